package auth

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

//go:embed common-passwords.txt
var commonList string

// common is the set of passwords too common to accept, lower case.
var common = func() map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(commonList, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			m[l] = true
		}
	}
	return m
}()

// ErrWeakPassword is wrapped by CheckPasswordPolicy's errors.
var ErrWeakPassword = errors.New("password not accepted")

// CheckPasswordPolicy says why a new password is not good enough: shorter
// than MinPasswordLength characters, longer than 200, one of the commonest
// passwords (whatever its case, and with a digit or two appended), or made
// of the account's own email or name. The words are for the person
// choosing it.
func CheckPasswordPolicy(password, email, name string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case n < MinPasswordLength:
		return fmt.Errorf("%w: use at least %d characters (a few unrelated words work well)", ErrWeakPassword, MinPasswordLength)
	case n > 200:
		return fmt.Errorf("%w: use at most 200 characters", ErrWeakPassword)
	}
	lower := strings.ToLower(password)
	if common[lower] || common[strings.TrimRight(lower, "0123456789!")] {
		return fmt.Errorf("%w: it is one of the most common passwords, which are tried first", ErrWeakPassword)
	}
	local, _, _ := strings.Cut(strings.ToLower(email), "@")
	for _, own := range []string{local, strings.ToLower(strings.ReplaceAll(name, " ", ""))} {
		if len(own) >= 4 && strings.Contains(strings.ReplaceAll(lower, " ", ""), own) {
			return fmt.Errorf("%w: it contains the account's own email or name", ErrWeakPassword)
		}
	}
	return nil
}
