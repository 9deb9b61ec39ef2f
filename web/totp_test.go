package web

import (
	"bytes"
	"encoding/base32"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/auth"
)

var testSecret = []byte("a test key of thirty-two bytes, or more") // newFixtureWith's Deps.Secret

// newClient is a client with a fresh cookie jar that does not follow redirects.
func newClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// call makes a request and returns the response with its body read.
func call(t *testing.T, c *http.Client, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = c.PostForm(u, form)
	} else {
		resp, err = c.Get(u)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// enableTOTP gives a user a second factor directly in the store and
// returns its secret.
func enableTOTP(t *testing.T, f *fixture, email string) []byte {
	t.Helper()
	u, err := f.st.UserByEmail(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	secret := auth.NewTOTPSecret()
	sealed, err := auth.Seal(testSecret, secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.SetTOTPSecret(t.Context(), u.ID, sealed); err != nil {
		t.Fatal(err)
	}
	return secret
}

// storedSecret is a user's second factor as the store holds it: sealed.
func storedSecret(t *testing.T, f *fixture, email string) []byte {
	t.Helper()
	u, err := f.st.UserByEmail(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u.TOTPSecret
}

// wrongCode is a well-formed code that secret does not give near at.
func wrongCode(secret []byte, at time.Time) string {
	for i := 0; ; i++ {
		c := fmt.Sprintf("%06d", i)
		if _, ok := auth.CheckTOTP(secret, c, at); !ok {
			return c
		}
	}
}

var (
	pendingField = regexp.MustCompile(`name="pending" value="([^"]+)"`)
	uriSecret    = regexp.MustCompile(`otpauth://totp/[^"]*[?&;]secret=([A-Z2-7]+)`)
)

// enrolForm reads the set-up page: the key it shows and the sealed form field.
func enrolForm(t *testing.T, body string) (secret []byte, pending string) {
	t.Helper()
	p := pendingField.FindStringSubmatch(body)
	m := uriSecret.FindStringSubmatch(body)
	if p == nil || m == nil {
		t.Fatalf("no set-up key on the page:\n%s", body)
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return secret, p[1]
}

// TestTOTPEnrol: the set-up page shows a key; a wrong code, or another
// user's form, turns nothing on; the right code stores the key sealed and
// ends the account's other sessions.
func TestTOTPEnrol(t *testing.T) {
	f, clk := clockFixture(t)
	c := f.signIn(t, "sched@example.org")
	elsewhere := f.signIn(t, "sched@example.org")

	resp, body := call(t, c, "GET", f.srv.URL+"/account/totp", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("set-up page: %d", resp.StatusCode)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("set-up page Cache-Control %q, want no-store", cc)
	}
	secret, pending := enrolForm(t, body)
	if len(secret) != 20 {
		t.Fatalf("key of %d bytes", len(secret))
	}
	for _, want := range []string{
		auth.TOTPSecretText(secret), // in groups of four
		`<label for="code">`, `autocomplete="one-time-code"`, `inputmode="numeric"`,
		`<label for="totp-key">`, "issuer=Bedside",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("set-up page lacks %q", want)
		}
	}

	// A wrong code: refused, nothing stored, the same key offered again.
	resp, body = call(t, c, "POST", f.srv.URL+"/account/totp", url.Values{"pending": {pending}, "code": {wrongCode(secret, clk.now())}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "not right") || !strings.Contains(body, `aria-invalid="true"`) {
		t.Fatalf("wrong code: %d\n%s", resp.StatusCode, body)
	}
	if again, _ := enrolForm(t, body); !bytes.Equal(again, secret) {
		t.Error("after a wrong code the page shows another key")
	}
	if s := storedSecret(t, f, "sched@example.org"); s != nil {
		t.Fatalf("a wrong code stored %x", s)
	}

	// Another user's set-up form, and a changed one, are refused even with
	// their right code.
	doc := f.signIn(t, "doc@example.org")
	_, docBody := call(t, doc, "GET", f.srv.URL+"/account/totp", nil)
	docSecret, docPending := enrolForm(t, docBody)
	changed := []byte(pending) // one letter in the middle changed
	if i := len(changed) / 2; changed[i] == 'A' {
		changed[i] = 'B'
	} else {
		changed[i] = 'A'
	}
	for name, p := range map[string]string{"another user's": docPending, "a changed": string(changed)} {
		code := auth.TOTPCode(docSecret, clk.now())
		if name == "a changed" {
			code = auth.TOTPCode(secret, clk.now())
		}
		resp, _ = call(t, c, "POST", f.srv.URL+"/account/totp", url.Values{"pending": {p}, "code": {code}})
		if resp.StatusCode != http.StatusUnprocessableEntity || storedSecret(t, f, "sched@example.org") != nil {
			t.Fatalf("%s set-up form: %d, want 422 and nothing stored", name, resp.StatusCode)
		}
	}

	// The right code, typed with a space.
	code := auth.TOTPCode(secret, clk.now())
	resp, body = call(t, c, "POST", f.srv.URL+"/account/totp", url.Values{"pending": {pending}, "code": {code[:3] + " " + code[3:]}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "is on") {
		t.Fatalf("right code: %d\n%s", resp.StatusCode, body)
	}
	sealed := storedSecret(t, f, "sched@example.org")
	if len(sealed) == 0 || bytes.Equal(sealed, secret) || bytes.Contains(sealed, secret) {
		t.Fatalf("stored %x for key %x: want it sealed", sealed, secret)
	}
	if opened, err := auth.Open(testSecret, sealed); err != nil || !bytes.Equal(opened, secret) {
		t.Fatalf("stored value opens to %x, %v; want the key", opened, err)
	}
	if strings.Contains(body, auth.TOTPSecretText(secret)) {
		t.Error("the key is shown again once on")
	}

	// This browser is still signed in; the other session is over.
	if resp, _ := call(t, c, "GET", f.srv.URL+"/schedule", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("enrolling browser after set-up: %d", resp.StatusCode)
	}
	if resp, _ := call(t, elsewhere, "GET", f.srv.URL+"/schedule", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("another session after set-up: %d, want a redirect to sign in", resp.StatusCode)
	}

	// Once on, the page says so and setting up again is refused.
	resp, body = call(t, c, "GET", f.srv.URL+"/account/totp", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "/account/totp/off") || pendingField.MatchString(body) {
		t.Errorf("page once on: %d\n%s", resp.StatusCode, body)
	}
	resp, _ = call(t, c, "POST", f.srv.URL+"/account/totp", url.Values{"pending": {pending}, "code": {code}})
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("setting up twice: %d, want 409", resp.StatusCode)
	}
	if !bytes.Equal(storedSecret(t, f, "sched@example.org"), sealed) {
		t.Error("setting up twice replaced the key")
	}

	// A set-up form left open too long no longer works.
	_, body = call(t, doc, "GET", f.srv.URL+"/account/totp", nil)
	docSecret, docPending = enrolForm(t, body)
	clk.add(enrolTTL + time.Minute)
	doc = f.signIn(t, "doc@example.org") // the old session went idle
	resp, _ = call(t, doc, "POST", f.srv.URL+"/account/totp", url.Values{"pending": {docPending}, "code": {auth.TOTPCode(docSecret, clk.now())}})
	if resp.StatusCode != http.StatusUnprocessableEntity || storedSecret(t, f, "doc@example.org") != nil {
		t.Errorf("an expired set-up form: %d, want 422 and nothing stored", resp.StatusCode)
	}
}

// passwordStep signs in with the password only and returns the client,
// which then holds the pending sign-in.
func passwordStep(t *testing.T, f *fixture, email, next string) *http.Client {
	t.Helper()
	c := newClient()
	resp, _ := call(t, c, "POST", f.srv.URL+"/login", url.Values{"email": {email}, "password": {testPassword}, "next": {next}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login/code") {
		t.Fatalf("password step: %d to %q, want a redirect to /login/code", resp.StatusCode, resp.Header.Get("Location"))
	}
	var mfa bool
	for _, ck := range resp.Cookies() {
		switch ck.Name {
		case sessionCookie:
			t.Fatal("the password alone started a session")
		case mfaCookie:
			mfa = true
			if !ck.HttpOnly || ck.Path != "/login/code" || ck.MaxAge != 300 {
				t.Errorf("pending cookie %+v: want HttpOnly, path /login/code, 5 minutes", ck)
			}
		}
	}
	if !mfa {
		t.Fatal("no pending cookie after the password")
	}
	return c
}

// mfaToken is the pending cookie's value in c.
func mfaToken(t *testing.T, f *fixture, c *http.Client) string {
	t.Helper()
	u, _ := url.Parse(f.srv.URL + "/login/code")
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == mfaCookie {
			return ck.Value
		}
	}
	t.Fatal("no pending cookie")
	return ""
}

// staffPages are pages the pending sign-in must not open, as each of its
// staff roles would.
var staffPages = []string{"/", "/schedule", "/schedule/day", "/patients", "/patients/new", "/outbox", "/today",
	"/audit", "/account/totp", "/physicians/1/availability"}

// refusedPending checks that c, holding a pending sign-in, opens none of
// the staff pages and cannot post as staff, also with the pending token
// put in the session cookie.
func refusedPending(t *testing.T, f *fixture, c *http.Client) {
	t.Helper()
	forged := newClient()
	u, _ := url.Parse(f.srv.URL)
	forged.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: mfaToken(t, f, c)}})
	for name, cl := range map[string]*http.Client{"pending": c, "pending token as session": forged} {
		for _, p := range staffPages {
			resp, _ := call(t, cl, "GET", f.srv.URL+p, nil)
			if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?") {
				t.Errorf("%s: GET %s: %d to %q, want a redirect to sign in", name, p, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		for _, p := range []string{"/logout/everywhere", "/patients", "/account/totp", "/account/totp/off"} {
			resp, _ := call(t, cl, "POST", f.srv.URL+p, url.Values{})
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: POST %s: %d, want 401", name, p, resp.StatusCode)
			}
		}
	}
}

// TestTOTPSignIn: with a second factor, the password alone opens nothing;
// the right code then signs in and goes on to the page asked for.
func TestTOTPSignIn(t *testing.T) {
	f, clk := clockFixture(t)
	secret := enableTOTP(t, f, "sched@example.org")
	enableTOTP(t, f, "doc@example.org")

	c := passwordStep(t, f, "sched@example.org", "/patients")
	refusedPending(t, f, c)
	refusedPending(t, f, passwordStep(t, f, "doc@example.org", "/today"))

	resp, body := call(t, c, "GET", f.srv.URL+"/login/code?next=%2Fpatients", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("code page: %d", resp.StatusCode)
	}
	for _, want := range []string{`<label for="code">`, `autocomplete="one-time-code"`, `inputmode="numeric"`, `name="next" value="/patients"`} {
		if !strings.Contains(body, want) {
			t.Errorf("code page lacks %q", want)
		}
	}
	if resp, _ := call(t, newClient(), "GET", f.srv.URL+"/login/code", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("code page without a pending sign-in: %d, want a redirect to sign in", resp.StatusCode)
	}

	// A wrong code: 401, a clear message, still no session.
	resp, body = call(t, c, "POST", f.srv.URL+"/login/code", url.Values{"code": {wrongCode(secret, clk.now())}, "next": {"/patients"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "That code is not right") {
		t.Fatalf("wrong code: %d\n%s", resp.StatusCode, body)
	}
	refusedPending(t, f, c)

	// Another user's full session cannot stand in for the pending one.
	other := f.signIn(t, "pat@example.org")
	u, _ := url.Parse(f.srv.URL)
	var sess string
	for _, ck := range other.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			sess = ck.Value
		}
	}
	forged := newClient()
	codeURL, _ := url.Parse(f.srv.URL + "/login/code")
	forged.Jar.SetCookies(codeURL, []*http.Cookie{{Name: mfaCookie, Value: sess}})
	if resp, _ := call(t, forged, "POST", f.srv.URL+"/login/code", url.Values{"code": {auth.TOTPCode(secret, clk.now())}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a session token as the pending cookie: %d, want 401", resp.StatusCode)
	}

	// The right code, a step late.
	pending := mfaToken(t, f, c)
	resp, _ = call(t, c, "POST", f.srv.URL+"/login/code", url.Values{"code": {auth.TOTPCode(secret, clk.now().Add(-30*time.Second))}, "next": {"/patients"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/patients" {
		t.Fatalf("right code: %d to %q, want 303 to /patients", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/schedule", "/patients", "/outbox"} {
		if resp, _ := call(t, c, "GET", f.srv.URL+p, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s after the code: %d", p, resp.StatusCode)
		}
	}
	// The pending sign-in is used up.
	again := newClient()
	again.Jar.SetCookies(codeURL, []*http.Cookie{{Name: mfaCookie, Value: pending}})
	if resp, _ := call(t, again, "POST", f.srv.URL+"/login/code", url.Values{"code": {auth.TOTPCode(secret, clk.now())}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the pending sign-in used twice: %d, want 401", resp.StatusCode)
	}
	// Without a second factor, the password alone still signs in.
	f.signIn(t, "doc2@example.org")
}

// TestTOTPCodeThrottled: wrong codes count against the account as wrong
// passwords do; the right password does not reset the count.
func TestTOTPCodeThrottled(t *testing.T) {
	f, clk := clockFixture(t)
	secret := enableTOTP(t, f, "sched@example.org")
	c := passwordStep(t, f, "sched@example.org", "/")
	for i := range 5 {
		if i == 3 { // the password again, with its pending sign-in, changes nothing
			c = passwordStep(t, f, "sched@example.org", "/")
		}
		resp, _ := call(t, c, "POST", f.srv.URL+"/login/code", url.Values{"code": {wrongCode(secret, clk.now())}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	// Blocked now, even the right code, which is not even checked.
	resp, body := call(t, c, "POST", f.srv.URL+"/login/code", url.Values{"code": {auth.TOTPCode(secret, clk.now())}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "900" || !strings.Contains(body, "Too many wrong codes") {
		t.Fatalf("after 5 wrong codes: %d Retry-After %q, want 429 900", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	refusedPending(t, f, c)
	// And so is the password step.
	if _, resp := tryLogin(t, f, "sched@example.org", testPassword); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("password after 5 wrong codes: %d, want 429", resp.StatusCode)
	}
	// After the window, both steps work, and the count is cleared.
	clk.add(15*time.Minute + time.Second)
	c = passwordStep(t, f, "sched@example.org", "/")
	if resp, _ := call(t, c, "POST", f.srv.URL+"/login/code", url.Values{"code": {auth.TOTPCode(secret, clk.now())}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("right code after the window: %d", resp.StatusCode)
	}
	if n, _ := f.st.LoginFailures(t.Context(), accountKey("sched@example.org"), clk.now().Add(-time.Hour)); n != 0 {
		t.Errorf("failures after a good sign-in: %d", n)
	}
}

// TestTOTPPendingExpires: the code step waits five minutes, no longer.
func TestTOTPPendingExpires(t *testing.T) {
	f, clk := clockFixture(t)
	secret := enableTOTP(t, f, "sched@example.org")

	c := passwordStep(t, f, "sched@example.org", "/schedule")
	clk.add(secondFactorTTL - 10*time.Second)
	if resp, _ := call(t, c, "POST", f.srv.URL+"/login/code", url.Values{"code": {auth.TOTPCode(secret, clk.now())}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("code after almost 5 minutes: %d, want 303", resp.StatusCode)
	}

	c = passwordStep(t, f, "sched@example.org", "/schedule")
	token := mfaToken(t, f, c)
	clk.add(secondFactorTTL)
	resp, body := call(t, c, "POST", f.srv.URL+"/login/code", url.Values{"code": {auth.TOTPCode(secret, clk.now())}, "next": {"/schedule"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "ran out of time") {
		t.Fatalf("code after 5 minutes: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := call(t, c, "GET", f.srv.URL+"/schedule", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("schedule after an expired code step: %d, want a redirect to sign in", resp.StatusCode)
	}
	// The browser may drop the cookie on its own; the server refuses it anyway.
	stale := newClient()
	codeURL, _ := url.Parse(f.srv.URL + "/login/code")
	stale.Jar.SetCookies(codeURL, []*http.Cookie{{Name: mfaCookie, Value: token}})
	if resp, _ := call(t, stale, "GET", f.srv.URL+"/login/code", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("code page after 5 minutes: %d, want a redirect to sign in", resp.StatusCode)
	}
	if _, err := f.st.SessionByHash(t.Context(), auth.HashToken(token)); err == nil {
		t.Error("the expired pending sign-in is still stored")
	}
}

// TestTOTPOff: turning two-step sign-in off takes a right code; wrong
// ones count as failed sign-ins.
func TestTOTPOff(t *testing.T) {
	f, clk := clockFixture(t)
	secret := enableTOTP(t, f, "doc@example.org")
	c := passwordStep(t, f, "doc@example.org", "/account/totp")
	resp, _ := call(t, c, "POST", f.srv.URL+"/login/code", url.Values{"code": {auth.TOTPCode(secret, clk.now())}, "next": {"/account/totp"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	resp, body := call(t, c, "GET", f.srv.URL+"/account/totp", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="/account/totp/off"`) || !strings.Contains(body, `autocomplete="one-time-code"`) {
		t.Fatalf("settings page when on: %d\n%s", resp.StatusCode, body)
	}

	resp, body = call(t, c, "POST", f.srv.URL+"/account/totp/off", url.Values{"code": {wrongCode(secret, clk.now())}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "still on") {
		t.Fatalf("wrong code to turn off: %d\n%s", resp.StatusCode, body)
	}
	if storedSecret(t, f, "doc@example.org") == nil {
		t.Fatal("a wrong code turned it off")
	}
	if n, _ := f.st.LoginFailures(t.Context(), accountKey("doc@example.org"), clk.now().Add(-time.Hour)); n != 1 {
		t.Errorf("failures after a wrong code: %d, want 1", n)
	}

	clk.add(30 * time.Second) // the sign-in used this step's code
	resp, body = call(t, c, "POST", f.srv.URL+"/account/totp/off", url.Values{"code": {auth.TOTPCode(secret, clk.now())}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "is off") {
		t.Fatalf("right code to turn off: %d\n%s", resp.StatusCode, body)
	}
	if s := storedSecret(t, f, "doc@example.org"); s != nil {
		t.Fatalf("still stored: %x", s)
	}
	if resp, _ := call(t, c, "POST", f.srv.URL+"/account/totp/off", url.Values{"code": {auth.TOTPCode(secret, clk.now())}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("turning off twice: %d, want 409", resp.StatusCode)
	}
	// The password alone signs in again.
	f.signIn(t, "doc@example.org")
}

// TestTOTPOffThrottled: a session alone cannot guess codes to turn the
// second factor off.
func TestTOTPOffThrottled(t *testing.T) {
	f, clk := clockFixture(t)
	c := f.signIn(t, "sched@example.org") // signed in before the factor was added
	secret := enableTOTP(t, f, "sched@example.org")
	for i := range 5 {
		if resp, _ := call(t, c, "POST", f.srv.URL+"/account/totp/off", url.Values{"code": {wrongCode(secret, clk.now())}}); resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("wrong code %d: %d, want 422", i+1, resp.StatusCode)
		}
	}
	resp, _ := call(t, c, "POST", f.srv.URL+"/account/totp/off", url.Values{"code": {auth.TOTPCode(secret, clk.now())}})
	if resp.StatusCode != http.StatusTooManyRequests || storedSecret(t, f, "sched@example.org") == nil {
		t.Fatalf("right code after 5 wrong ones: %d, want 429 and still on", resp.StatusCode)
	}
}

// TestTOTPCodeWorksOnce: a right code that was already accepted is refused,
// from another browser too, with a message saying to wait for the next one,
// and counts as a failed sign-in; the next step's code then works.
func TestTOTPCodeWorksOnce(t *testing.T) {
	f, clk := clockFixture(t)
	secret := enableTOTP(t, f, "sched@example.org")
	code := auth.TOTPCode(secret, clk.now())

	first := passwordStep(t, f, "sched@example.org", "/patients")
	if resp, _ := call(t, first, "POST", f.srv.URL+"/login/code", url.Values{"code": {code}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first use of the code: %d, want 303", resp.StatusCode)
	}
	// Someone who watched the code typed, in another browser with the password.
	second := passwordStep(t, f, "sched@example.org", "/patients")
	resp, body := call(t, second, "POST", f.srv.URL+"/login/code", url.Values{"code": {code}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "already used") {
		t.Fatalf("the same code again: %d\n%s", resp.StatusCode, body)
	}
	refusedPending(t, f, second)
	// The step before is older than the one used: refused too.
	if resp, body := call(t, second, "POST", f.srv.URL+"/login/code", url.Values{"code": {auth.TOTPCode(secret, clk.now().Add(-30*time.Second))}}); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "already used") {
		t.Fatalf("the previous step's code after this step's: %d\n%s", resp.StatusCode, body)
	}
	// Turning the factor off is guarded the same way.
	if resp, body := call(t, first, "POST", f.srv.URL+"/account/totp/off", url.Values{"code": {code}}); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "already used") {
		t.Fatalf("turning off with a used code: %d\n%s", resp.StatusCode, body)
	}
	if storedSecret(t, f, "sched@example.org") == nil {
		t.Fatal("a used code turned the second factor off")
	}

	clk.add(30 * time.Second)
	if resp, _ := call(t, second, "POST", f.srv.URL+"/login/code", url.Values{"code": {auth.TOTPCode(secret, clk.now())}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the next step's code: %d, want 303", resp.StatusCode)
	}
}
