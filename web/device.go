package web

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/wsconn"
)

// deviceMaxMessage is the largest device frame accepted; larger closes with 1009.
const deviceMaxMessage = 64 << 10

// bearerToken reads "Authorization: Bearer X", else the token query parameter.
func bearerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return r.URL.Query().Get("token")
}

// handleDeviceWS accepts a device's stream of observation envelopes.
func (s *server) handleDeviceWS(w http.ResponseWriter, r *http.Request) {
	if s.refuseCrossOrigin(w, r) {
		return
	}
	token := bearerToken(r)
	if token == "" {
		http.Error(w, "a device token is required (Authorization: Bearer, or ?token=)", http.StatusUnauthorized)
		return
	}
	cred, err := s.Store.CredentialByHash(r.Context(), store.CredentialDevice, auth.HashToken(token))
	now := s.Now()
	if err != nil || !cred.RevokedAt.IsZero() || (!cred.ExpiresAt.IsZero() && !now.Before(cred.ExpiresAt)) {
		http.Error(w, "unknown, expired or revoked device token", http.StatusUnauthorized)
		return
	}
	ws, err := s.upgrader().Upgrade(w, r, nil)
	if err != nil {
		return
	}
	conn := wsconn.New(ws, wsconn.Options{ReadLimit: deviceMaxMessage})
	defer conn.Close()
	release := s.devices.claim(cred.ID, conn)
	defer release()
	// Read the acknowledged sequence only once this connection owns the
	// device, so it reflects everything the previous connection stored.
	cred, err = s.Store.CredentialByHash(r.Context(), store.CredentialDevice, cred.TokenHash)
	if err != nil {
		s.Log.ErrorContext(r.Context(), "reload device", "device", cred.ID, "err", err)
		return
	}
	ing := vitals.NewIngester(deviceSink{s.Store, cred.UserID}, busPublisher{s}, vitals.Device{
		ID: cred.ID, PatientID: cred.UserID, Name: cred.Name, LastSeq: cred.LastSeq,
	})
	s.Log.InfoContext(r.Context(), "device connected", "device", cred.ID, "patient", cred.UserID)
	err = vitals.ServeDevice(r.Context(), conn, ing)
	s.Log.InfoContext(r.Context(), "device disconnected", "device", cred.ID, "err", err)
}

// deviceSink stores a device's readings through the store.
type deviceSink struct {
	st        store.Observations
	patientID int64
}

func (d deviceSink) Append(ctx context.Context, deviceID, lastSeq int64, readings []vitals.StoredReading) error {
	obs := make([]store.Observation, 0, len(readings))
	now := time.Now().UTC()
	for _, sr := range readings {
		obs = append(obs, store.Observation{
			PatientID: d.patientID, DeviceID: deviceID, Seq: sr.Seq,
			Code: sr.Reading.Code, Value: sr.Reading.Value, Unit: sr.Reading.Unit,
			EffectiveAt: sr.Reading.Time.UTC(), ReceivedAt: now,
		})
	}
	return d.st.AppendObservations(ctx, deviceID, lastSeq, obs)
}

// busPublisher sends encoded live readings to the patient's bus topic.
type busPublisher struct{ s *server }

func (b busPublisher) Publish(ctx context.Context, patientID int64, msg []byte) error {
	return b.s.Bus.Publish(ctx, vitalsTopic(patientID), msg)
}
