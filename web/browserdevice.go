package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/account"
	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
)

// errBrowserOff closes, and refuses, the device socket of a patient's
// browser whose "Web browser" device an admin revoked.
var errBrowserOff = errors.New("vitals from this browser were turned off by the clinic; ask the clinic to allow them again")

// refuseBrowser tells a patient's browser that its vitals are off. A
// browser cannot read the status of a refused WebSocket upgrade (its page
// sees a dropped connection, which it would retry, each try an audited
// denial), so the upgrade is accepted and closed at once with 1008 and the
// reason, as an open socket is closed when its device is revoked. It waits
// a little for the browser's reply, so the close reaches the page whole.
func (s *server) refuseBrowser(w http.ResponseWriter, r *http.Request, why error) {
	ws, err := s.socketUpgrader(deviceReadBuffer).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	deadline := time.Now().Add(refuseWait)
	if ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, why.Error()), deadline) != nil {
		return
	}
	_ = ws.SetReadDeadline(deadline)
	for {
		if _, _, err := ws.NextReader(); err != nil {
			return // the browser's close, or the deadline
		}
	}
}

// refuseWait bounds how long a refused browser's socket is held for its
// close reply.
const refuseWait = 5 * time.Second

// browserCredential returns the device a patient's browser streams as: the
// patient's newest device marked as a browser's (store.Credential.Browser),
// made on first use; a device an admin added, whatever its name, never is.
// Revoking it (the admin's user page) turns vitals from the patient's
// browser off until an admin allows them again (adminAllowBrowser), which
// makes a new one; so a revoked or expired one refuses the browser, rather
// than a new one being made behind the admin's back at its next connection.
// Making one is audited as by's creation of it.
func (s *server) browserCredential(ctx context.Context, by audit.Who, patientID int64) (store.Credential, error) {
	newest, err := s.newestBrowser(ctx, patientID)
	switch {
	case err != nil:
		return newest, err
	case newest.ID != 0 && !s.browserOn(newest):
		return newest, errBrowserOff
	case newest.ID != 0:
		return newest, nil
	}
	return s.newBrowserCredential(ctx, by, patientID)
}

// newestBrowser is the patient's newest browser device, or a zero
// Credential if they have none.
func (s *server) newestBrowser(ctx context.Context, patientID int64) (store.Credential, error) {
	creds, err := s.Store.ListCredentials(ctx, store.CredentialDevice, patientID)
	if err != nil {
		return store.Credential{}, fmt.Errorf("look up the browser device: %w", err)
	}
	var newest store.Credential
	for _, cr := range creds {
		if cr.Browser && cr.ID > newest.ID {
			newest = cr
		}
	}
	return newest, nil
}

// browserOn says whether the browser's device may stream: neither revoked
// nor expired.
func (s *server) browserOn(cred store.Credential) bool {
	return cred.RevokedAt.IsZero() && (cred.ExpiresAt.IsZero() || s.Now().Before(cred.ExpiresAt))
}

// newBrowserCredential makes the device a patient's browser streams as. It
// has no usable token: its hash is of a secret nobody keeps, so only the
// patient's visit session can stream as it. It is audited as by's
// creation of a credential for the patient's data.
//
// A patient has at most one live browser device (the store refuses a
// second with store.ErrConflict): when two first connections (two tabs)
// or two admins allowing the browser again race, one makes it and the
// others take that one, made by someone else and so not audited again.
func (s *server) newBrowserCredential(ctx context.Context, by audit.Who, patientID int64) (store.Credential, error) {
	_, hash := auth.NewToken()
	cred, err := s.Store.CreateCredential(ctx, store.Credential{
		Kind: store.CredentialDevice, TokenHash: hash, UserID: patientID, Name: browserDevice, CreatedAt: s.Now(), Browser: true,
	})
	if errors.Is(err, store.ErrConflict) {
		won, err := s.newestBrowser(ctx, patientID)
		switch {
		case err != nil:
			return won, err
		case won.ID == 0 || !s.browserOn(won):
			// Revoked again since it won: off, as it would be found.
			return won, errBrowserOff
		}
		return won, nil
	}
	if err != nil {
		return cred, fmt.Errorf("make the browser device: %w", err)
	}
	s.Audit.Success(ctx, by, audit.ActionCreate, patientID, audit.Ref("Credential", cred.ID))
	return cred, nil
}

// browserStillOn is the re-check of a browser's device socket: its
// device must be neither revoked nor expired. A store that cannot answer
// keeps the stream, which the store also holds.
func (s *server) browserStillOn(ctx context.Context, id int64) error {
	got, err := s.Store.CredentialByID(ctx, store.CredentialDevice, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !s.browserOn(got) {
		return errBrowserOff
	}
	return nil
}

// adminAllowBrowser lets a patient's browser stream vitals again after an
// admin revoked its "Web browser" device: a new one, which its next
// connection streams as (or the first, if it never streamed), audited as
// any device added.
func (s *server) adminAllowBrowser(r *http.Request, c caller, u store.User) (string, *templates.AdminSecret, error) {
	switch {
	case u.Role != store.RolePatient:
		return "", nil, account.ErrNotPatient
	case !u.Active():
		return "", nil, account.ErrInactive
	}
	by := audit.User(c.User, r)
	cred, err := s.browserCredential(r.Context(), by, u.ID)
	if errors.Is(err, errBrowserOff) && cred.RevokedAt.IsZero() {
		// Expired rather than revoked, it still holds the patient's one
		// live browser device: revoke it to make the new one.
		err = s.Store.RevokeCredential(r.Context(), cred.ID, s.Now())
		if err != nil {
			return "", nil, fmt.Errorf("revoke the expired browser device: %w", err)
		}
		err = errBrowserOff
	}
	if errors.Is(err, errBrowserOff) {
		cred, err = s.newBrowserCredential(r.Context(), by, u.ID)
	}
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("Vitals from %s's browser are allowed again, as device %d.", u.Name, cred.ID), nil, nil
}

// revokedFlash says what revoking cred did.
func (s *server) revokedFlash(cred store.Credential) string {
	if cred.Kind == store.CredentialDevice && cred.Browser {
		return fmt.Sprintf("Vitals from the patient's browser turned off (device %d): an open connection closes within %s, and the browser is refused until you allow it again. The visit and its call go on.", cred.ID, s.recheckEvery())
	}
	return fmt.Sprintf("Token %d revoked; a device connected with it is disconnected within %s.", cred.ID, s.recheckEvery())
}
