package auth

import (
	"errors"
	"testing"
)

func TestCheckPasswordPolicy(t *testing.T) {
	for _, c := range []struct {
		password string
		ok       bool
	}{
		{"short", false},
		{"Password123", false},   // common, any case
		{"qwertyuiop", false},    // common
		{"sunshine2024!", false}, // common with digits appended
		{"maria.silva-1961", false},
		{"Maria Silva rocks", false},
		{"correct horse battery staple", true},
		{"tangerine-kettle-41", true},
		{string(make([]byte, 201)), false},
	} {
		err := CheckPasswordPolicy(c.password, "maria.silva@example.org", "Maria Silva")
		if (err == nil) != c.ok {
			t.Errorf("%q: %v, want ok=%v", c.password, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrWeakPassword) {
			t.Errorf("%q: %v does not wrap ErrWeakPassword", c.password, err)
		}
	}
}
