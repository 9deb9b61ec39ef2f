package jsonscan

import "testing"

// TestKey reads member names as written, with what follows the colon.
func TestKey(t *testing.T) {
	for _, c := range []struct {
		in, name string
		plain    bool
		value    byte
	}{
		{`{"seq":1}`, `seq`, true, '1'},
		{"{\"seq\" \t:\n 7}", `seq`, true, '7'},
		{`{"a\"b":true}`, `a\"b`, false, 't'},
		{`{"\u0073eq":2}`, `\u0073eq`, false, '2'},
		{`{"séq":"x"}`, `séq`, false, '"'},
		{`{"":null}`, ``, true, 'n'},
	} {
		b := []byte(c.in)
		name, plain, v := Key(b, 1)
		if string(name) != c.name || plain != c.plain || b[v] != c.value {
			t.Errorf("Key(%s) = %q, %v, value at %q; want %q, %v, %q", c.in, name, plain, b[v], c.name, c.plain, c.value)
		}
	}
}
