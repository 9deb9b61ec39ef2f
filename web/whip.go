package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"

	"github.com/bedside-health/bedside/account"
	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/store"
)

// StreamHub opens and ends WHIP publishers and WHEP viewers in visits.
type StreamHub interface {
	OpenStream(ctx context.Context, kind string, appointment int64, owner, ownerName, offer string) (*signaling.Stream, string, error)
	CloseStream(kind string, appointment int64, id, owner string) error
}

var _ StreamHub = (*signaling.Hub)(nil)

// Limits of a WHIP or WHEP request.
const (
	// maxOffer bounds an SDP offer; a browser's simulcast offer is about
	// 10 KiB, a WHIP tool's a few.
	maxOffer = 64 << 10
	// negotiateTimeout bounds applying an offer and gathering candidates.
	negotiateTimeout = 10 * time.Second
)

// sdpType is the media type of WHIP and WHEP offers and answers.
const sdpType = "application/sdp"

// bearerCaller authenticates a request by its API bearer token (as FHIR
// does): it answers 401 and returns false without a live one. Session
// cookies do not count: a page cannot publish into a visit behind its
// user's back.
func (s *server) bearerCaller(w http.ResponseWriter, r *http.Request) (caller, bool) {
	// An address whose tokens were refused too often is answered before
	// its token is looked up, and refusals are counted, not each written
	// (throttle.go); pin.go's probe ahead of the handler counts nothing.
	_, probe := w.(discardResponse)
	if !probe && s.tooManyRefusals(w, r, "api-token") {
		return caller{}, false
	}
	refuse := func(msg string) (caller, bool) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="bedside"`)
		http.Error(w, msg, http.StatusUnauthorized)
		return caller{}, false
	}
	h := r.Header.Get("Authorization")
	if len(h) <= 7 || !strings.EqualFold(h[:7], "Bearer ") || strings.TrimSpace(h[7:]) == "" {
		return refuse("an API token is required: send Authorization: Bearer <token> (issue one with `bedside token issue`)")
	}
	u, err := account.APIUser(r.Context(), s.Store, auth.HashToken(strings.TrimSpace(h[7:])), s.Now())
	var refused account.TokenRefused
	if errors.As(err, &refused) {
		if !probe {
			s.refuseAttempt(r, "api-token", store.AuditEvent{ActorRole: audit.RoleAnonymous, Action: audit.ActionLogin,
				Resource: "api-token", Outcome: audit.OutcomeFailed})
		}
		return refuse(string(refused))
	}
	if err != nil {
		s.serverError(w, r, err)
		return caller{}, false
	}
	return caller{User: u}, true
}

// mayStream reports whether c may publish to or view a's call: its
// physician, or its patient (an exam camera may sit on either side).
func mayStream(c caller, a scheduling.Appointment) bool {
	switch c.User.Role {
	case store.RolePhysician:
		return c.User.ID == a.PhysicianID
	case store.RolePatient:
		return c.User.ID == a.PatientID
	}
	return false
}

// streamVisit authenticates the bearer and loads the {id} visit, answering
// the refusal itself: 401 without a live API token, 404 for no such visit,
// 403 (audited) for someone not in it.
func (s *server) streamVisit(w http.ResponseWriter, r *http.Request, action string) (caller, scheduling.Appointment, bool) {
	c, ok := s.bearerCaller(w, r)
	if !ok {
		return c, scheduling.Appointment{}, false
	}
	a, ok := s.appointmentParam(w, r)
	if !ok {
		return c, a, false
	}
	if !mayStream(c, a) {
		s.auditDenied(r, c, action, a.PatientID, audit.Ref("Appointment", a.ID)+"/media")
		s.forbidden(w, r, "only the visit's physician or patient may stream media into it")
		return c, a, false
	}
	return c, a, true
}

// streamOwner names who opened a stream: the API token's user.
func streamOwner(c caller) string { return "u" + strconv.FormatInt(c.User.ID, 10) }

// handleOpenStream answers POST /whip/{id} (RFC 9725) and POST /whep/{id}:
// an SDP offer in, 201 with the SDP answer and the session's Location out.
func (s *server) handleOpenStream(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, a, ok := s.streamVisit(w, r, audit.ActionCreate)
		if !ok {
			return
		}
		if !a.Status.Live() {
			http.Error(w, "this visit was cancelled", http.StatusGone)
			return
		}
		if !vitalsOpen(a, s.Now()) {
			s.auditDenied(r, c, audit.ActionCreate, a.PatientID, audit.Ref("Appointment", a.ID)+"/media")
			s.forbidden(w, r, streamWindowRefusal)
			return
		}
		if kind == signaling.StreamView && c.User.Role == store.RolePatient && !s.Calls.Admitted(a.ID, streamOwner(c)) {
			// A viewer sees the call: a patient only once the physician
			// has let them in.
			s.auditDenied(r, c, audit.ActionCreate, a.PatientID, audit.Ref("Appointment", a.ID)+"/media")
			s.forbidden(w, r, "you can watch the visit once the physician has let you into the call")
			return
		}
		if s.Streams == nil {
			http.Error(w, "media streaming is not enabled on this server", http.StatusServiceUnavailable)
			return
		}
		offer, status, err := readOffer(w, r)
		if err != nil {
			http.Error(w, err.Error(), status)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), negotiateTimeout)
		defer cancel()
		st, answer, err := s.Streams.OpenStream(ctx, kind, a.ID, streamOwner(c), c.User.Name, offer)
		switch {
		case errors.Is(err, signaling.ErrFull):
			w.Header().Set("Retry-After", "60")
			http.Error(w, "the visit is full: "+err.Error(), http.StatusServiceUnavailable)
			return
		case errors.Is(err, media.ErrNoCodec):
			http.Error(w, "the offer cannot receive the video published in this visit: offer "+media.AcceptedVideo, http.StatusNotAcceptable)
			return
		case errors.Is(err, context.DeadlineExceeded):
			http.Error(w, "negotiation timed out", http.StatusGatewayTimeout)
			return
		case err != nil:
			http.Error(w, "the offer was refused: "+err.Error(), http.StatusBadRequest)
			return
		}
		s.audited(r, c, audit.ActionCreate, a.PatientID, audit.Ref("Appointment", a.ID)+"/media")
		s.Log.InfoContext(r.Context(), "stream opened", "kind", kind, "appointment", a.ID, "user", c.User.ID)
		// Checked while it runs, as sockets are; the request's context ends
		// with this answer, the stream does not.
		s.keepChecking(context.WithoutCancel(r.Context()), openStream{s.Streams, st}, s.stillStreaming(kind, bearerHash(r), a.ID))
		w.Header().Set("Content-Type", sdpType)
		w.Header().Set("Location", fmt.Sprintf("/%s/%d/%s", kind, a.ID, st.ID))
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, answer)
	}
}

// streamWindowRefusal: a stream opens, and stays open, in the window the
// visit's live vitals have, and not once the visit is completed.
const streamWindowRefusal = "media streams into a visit open from 30 minutes before it until 2 hours after, and not once it is completed"

// bearerHash is the SHA-256 of r's bearer token, which bearerCaller has
// accepted.
func bearerHash(r *http.Request) []byte {
	return auth.HashToken(strings.TrimSpace(r.Header.Get("Authorization")[7:]))
}

// openStream lets keepChecking end a WHIP or WHEP stream as it ends a
// socket.
type openStream struct {
	hub StreamHub
	st  *signaling.Stream
}

func (o openStream) Done() <-chan struct{} { return o.st.Done() }

func (o openStream) CloseWith(int, string) {
	_ = o.hub.CloseStream(o.st.Kind, o.st.Appointment, o.st.ID, o.st.Owner)
}

// errStreamToken ends a stream whose API token no longer authenticates.
var errStreamToken = errors.New("the API token was revoked or has expired, or its account was deactivated")

// stillStreaming checks that the API token (by its hash) that opened a
// stream still authenticates an active user who may stream into the visit,
// and that the visit is still in its streaming window (vitalsOpen); a
// patient's viewer also needs the patient still admitted to the call, as it
// did to open. The store being unwell keeps the stream.
func (s *server) stillStreaming(kind string, tokenHash []byte, appointment int64) func(context.Context) error {
	return func(ctx context.Context) error {
		u, err := account.APIUser(ctx, s.Store, tokenHash, s.Now())
		var refused account.TokenRefused
		if errors.As(err, &refused) {
			return errStreamToken
		}
		if err != nil {
			return nil
		}
		a, err := s.Store.AppointmentByID(ctx, appointment)
		if errors.Is(err, store.ErrNotFound) {
			return errVisitOver
		}
		if err != nil {
			return nil
		}
		c := caller{User: u}
		if !mayStream(c, a) || !vitalsOpen(a, s.Now()) {
			return errVisitOver
		}
		if kind == signaling.StreamView && u.Role == store.RolePatient && !s.Calls.Admitted(a.ID, streamOwner(c)) {
			return errNotInCall
		}
		return nil
	}
}

// handleCloseStream answers DELETE /whip/{id}/{session} and
// DELETE /whep/{id}/{session}: 200 when the stream was ended, 404 when it
// is not open or was opened by someone else.
func (s *server) handleCloseStream(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, a, ok := s.streamVisit(w, r, audit.ActionDelete)
		if !ok {
			return
		}
		if s.Streams == nil || s.Streams.CloseStream(kind, a.ID, r.PathValue("session"), streamOwner(c)) != nil {
			http.Error(w, "no such session", http.StatusNotFound)
			return
		}
		s.audited(r, c, audit.ActionDelete, a.PatientID, audit.Ref("Appointment", a.ID)+"/media")
		w.WriteHeader(http.StatusOK)
	}
}

// readOffer reads and checks a WHIP or WHEP request's SDP offer; on error
// it also returns the status to answer with.
func readOffer(w http.ResponseWriter, r *http.Request) (string, int, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != sdpType {
		return "", http.StatusUnsupportedMediaType, fmt.Errorf("the body must be an SDP offer with Content-Type: %s", sdpType)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOffer))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return "", http.StatusRequestEntityTooLarge, fmt.Errorf("the offer is larger than %d bytes", maxOffer)
	}
	if err != nil {
		return "", http.StatusBadRequest, fmt.Errorf("reading the offer: %w", err)
	}
	if err := checkOffer(body); err != nil {
		return "", http.StatusBadRequest, err
	}
	return string(body), 0, nil
}

// checkOffer refuses a body that is not an SDP offer the SFU can use, with
// a message saying what is wrong: every video section must offer a video
// codec the SFU receives (media.AcceptsVideo), every audio section Opus,
// and there must be at least one such section.
func checkOffer(body []byte) error {
	var d sdp.SessionDescription
	if err := d.Unmarshal(body); err != nil {
		return fmt.Errorf("the body is not valid SDP: %w", err)
	}
	sections := 0
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "audio" && m.MediaName.Media != "video" {
			continue
		}
		sections++
		switch {
		case m.MediaName.Media == "audio" && !offersOpus(m):
			return errAudioCodec
		case m.MediaName.Media == "video" && !offersVideo(m):
			return errVideoCodec
		}
	}
	if sections == 0 {
		return errors.New("the offer has no audio or video section")
	}
	return nil
}

// errAudioCodec refuses an audio section without Opus, the one audio
// codec the SFU forwards.
var errAudioCodec = errors.New("the offer's audio is in no codec the server forwards: send Opus audio")

// errVideoCodec refuses a video section in no codec the SFU receives.
var errVideoCodec = errors.New("the offer's video is in no codec the server forwards: send " + media.AcceptedVideo)

// offersOpus reports whether an audio section offers Opus.
func offersOpus(m *sdp.MediaDescription) bool {
	for _, a := range m.Attributes {
		if a.Key == "rtpmap" && strings.Contains(strings.ToLower(a.Value), " opus/48000") {
			return true
		}
	}
	return false
}

// offersVideo reports whether a video section offers a format the SFU
// receives, reading each payload type's rtpmap and fmtp.
func offersVideo(m *sdp.MediaDescription) bool {
	fmtps := make(map[string]string)
	for _, a := range m.Attributes {
		if a.Key == "fmtp" {
			if pt, v, ok := strings.Cut(a.Value, " "); ok {
				fmtps[pt] = v
			}
		}
	}
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		if pt, enc, ok := strings.Cut(a.Value, " "); ok && media.AcceptsVideo(strings.TrimSpace(enc), fmtps[pt]) {
			return true
		}
	}
	return false
}
