package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/reducers"
)

func TestReducerSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "billfold.yaml")
	require.NoError(t, os.WriteFile(path, []byte("reducers:\n  past_due_entitled: false\n  signup_bonus: 0\n  link_keys: [order_ref]\n"), 0o600))
	t.Setenv("BILLFOLD_FAIL_EVENT_TYPES", "invoice.paid, customer.created")
	fc, err := loadConfig(path, os.Getenv)
	require.NoError(t, err)
	o, err := reducerOptions(fc.Reducers, os.Getenv)
	require.NoError(t, err)
	want := reducers.DefaultOptions()
	want.PastDueEntitled, want.SignupBonus, want.LinkKeys = false, 0, []string{"order_ref"}
	want.FailTypes = []string{"invoice.paid", "customer.created"}
	assert.Equal(t, want, o)

	require.NoError(t, os.WriteFile(path, []byte("reducers:\n  signup_bonus: -1\n"), 0o600))
	fc, err = loadConfig(path, os.Getenv)
	require.NoError(t, err)
	_, err = reducerOptions(fc.Reducers, os.Getenv)
	assert.Equal(t, domain.CodeConfigInvalid, domain.ErrorCode(err))

	require.NoError(t, os.WriteFile(path, []byte("reducers:\n  signup_bonuss: 5\n"), 0o600))
	_, err = loadConfig(path, os.Getenv)
	assert.Equal(t, domain.CodeConfigInvalid, domain.ErrorCode(err), "a typo is an error")
}
