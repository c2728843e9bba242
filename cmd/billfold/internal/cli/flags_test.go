package cli

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Flags may come before, between or after a command's positional
// arguments, as `billfold get subscription -o json stripe sub_1` has them.
func TestParseInterleaved(t *testing.T) {
	fs := NewFlagSet("get", io.Discard)
	var f Flags
	f.Register(fs)
	pos, err := ParseInterleaved(fs, []string{"subscription", "-o", "json", "stripe", "--server", "http://x", "sub_1"})
	require.NoError(t, err)
	assert.Equal(t, []string{"subscription", "stripe", "sub_1"}, pos)
	assert.Equal(t, "json", f.Output)
	assert.Equal(t, "http://x", f.Server)
}
