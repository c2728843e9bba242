package main

import (
	"strings"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
)

// adminTokensFromEnv reads the tokens allowed to make admin mutations:
// BILLFOLD_ADMIN_TOKEN (named "admin") and BILLFOLD_ADMIN_TOKENS, a comma
// list of name=token, so that each operator or automation has a token of
// its own and requeues record who asked. getenv reads the environment.
// Every token needs minTokenLength characters, whichever variable gives it:
// a short one is BILLFOLD-CONFIG-INVALID and serve does not start.
func adminTokensFromEnv(getenv func(string) string) (projections.AdminTokens, error) {
	tokens := projections.AdminTokens{}
	if t := getenv("BILLFOLD_ADMIN_TOKEN"); t != "" {
		if len(t) < minTokenLength {
			return nil, domain.Errorf(domain.CodeConfigInvalid, "BILLFOLD_ADMIN_TOKEN must be %d characters or more", minTokenLength)
		}
		tokens["admin"] = t
	}
	for _, item := range strings.Split(getenv("BILLFOLD_ADMIN_TOKENS"), ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, token, ok := strings.Cut(item, "=")
		if !ok || name == "" || len(token) < minTokenLength {
			return nil, domain.Errorf(domain.CodeConfigInvalid, "BILLFOLD_ADMIN_TOKENS: want name=token pairs, tokens of %d characters or more", minTokenLength)
		}
		for other, t := range tokens {
			if t == token {
				return nil, domain.Errorf(domain.CodeConfigInvalid, "BILLFOLD_ADMIN_TOKENS: %s and %s share a token; each name needs its own", other, name)
			}
		}
		tokens[name] = token
	}
	return tokens, nil
}
