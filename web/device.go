package web

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/account"
	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/wsconn"
)

// deviceMaxMessage is the largest device frame accepted; larger closes with 1009.
const deviceMaxMessage = 64 << 10

// deviceQueue bounds the replies waiting to be written to a device: acks
// are cumulative, so few wait at once.
const deviceQueue = 64

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
	// An address refused too often is answered before its credential is
	// looked up; refusals are counted, not each written (throttle.go).
	if s.tooManyRefusals(w, r, "device") {
		return
	}
	cred, err := s.deviceCredential(r)
	if err != nil {
		s.refuseAttempt(r, "device", store.AuditEvent{ActorRole: audit.RoleAnonymous, Action: audit.ActionCreate,
			Resource: "Observation", Outcome: audit.OutcomeDenied})
		if errors.Is(err, errBrowserOff) {
			s.refuseBrowser(w, r, err)
			return
		}
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	ws, err := s.socketUpgrader(deviceReadBuffer).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	// Set up here, then served from a goroutine of its own (socketctx.go).
	p, done := s.socketRequest(r)
	ctx := p.ctx
	conn := wsconn.New(ws, wsconn.Options{ReadLimit: deviceMaxMessage, QueueLen: deviceQueue, Rate: s.devices.rate(cred.ID, s.DeviceRate)})
	s.metrics.sockets.Add(1, "device")
	release := s.claimDevice(ctx, cred.ID, conn)
	end := func() {
		release()
		s.metrics.sockets.Add(-1, "device")
		_ = conn.Close()
		done()
	}
	// Read the acknowledged sequence only once this connection owns the
	// device, so it reflects everything the previous connection stored.
	cred, err = s.Store.CredentialByHash(ctx, store.CredentialDevice, cred.TokenHash)
	if err != nil {
		s.Log.ErrorContext(ctx, "reload device", "device", cred.ID, "err", err)
		end()
		return
	}
	// The connection publishes through a Source of its patient's stream.
	ing := vitals.NewIngester(&deviceSink{st: s.Store, patientID: cred.UserID, log: s.Log}, s.Live.Source(cred.UserID), vitals.Device{
		ID: cred.ID, PatientID: cred.UserID, Name: cred.Name, LastSeq: cred.LastSeq,
	}).WithClock(s.Now)
	if s.DeviceAckInterval != 0 {
		ing.WithAckInterval(max(0, s.DeviceAckInterval))
	}
	// What the socket keeps of its credential while it is open: not the
	// whole store.Credential with its token hash and times.
	dev := socketDevice{id: cred.ID, patient: cred.UserID, name: cred.Name}
	relayed := &eventRecorder{s: s, dev: dev}
	ing.RecordEvents(relayed)
	ing.SetObserver(s.NEWS2)
	s.keepChecking(ctx, conn, s.stillDevice(p, dev.patient, dev.id))
	s.Log.InfoContext(ctx, "device connected", "device", dev.id, "patient", dev.patient)
	s.deviceEvent(ctx, dev, vitals.DeviceConnected)
	// One event per connection: the device (or the patient's browser)
	// writes the patient's observations from here on.
	s.Audit.Success(ctx, audit.Who{ID: dev.patient, Role: audit.RoleDevice, Address: audit.Address(r)},
		audit.ActionCreate, dev.patient, audit.Ref("Device", dev.id))
	s.goServe(ctx, func() {
		err := vitals.ServeDevice(ctx, conn, ing)
		switch {
		case errors.Is(err, websocket.ErrReadLimit):
			s.metrics.refused.Inc("device-frame")
		case errors.Is(err, wsconn.ErrTooFast):
			s.metrics.refused.Inc("device-rate")
		}
		s.Log.InfoContext(ctx, "device disconnected", "device", dev.id, "err", err)
	}, func() {
		// The devices it relayed go with it, before it does, so the
		// timeline and the viewers never keep them connected.
		relayed.disconnectAll(context.WithoutCancel(ctx))
		s.deviceEvent(context.WithoutCancel(ctx), dev, vitals.DeviceDisconnected)
		end()
	})
}

// socketDevice is the device behind an open socket.
type socketDevice struct {
	id, patient int64
	name        string
}

// deviceSink stores a device's readings through the store. One commit
// at a time uses it (vitals.Ingester.Commit).
type deviceSink struct {
	st        store.Observations
	patientID int64
	// obs is the last commit's array of observations, reused by the next:
	// a store is done with it once it has stored them.
	obs []store.Observation
	// relayed holds the ID of each Bluetooth device the connection has
	// relayed readings of, by name: kept once in the store, then looked up
	// here.
	relayed   map[string]int64
	relayFull bool         // the store keeps no more of the relay's devices
	log       *slog.Logger // nil: say nothing
}

// maxSinkObservations bounds the array a deviceSink keeps between commits
// (a second of a device's numerics; waveforms are not stored).
const maxSinkObservations = 16

func (d *deviceSink) Append(ctx context.Context, deviceID, lastSeq int64, readings []vitals.StoredReading) error {
	obs := d.obs[:0]
	d.obs = nil
	if cap(obs) < len(readings) {
		obs = make([]store.Observation, 0, len(readings))
	}
	now := time.Now().UTC()
	for _, sr := range readings {
		var relayed int64
		if sr.Source != "" {
			var err error
			if relayed, err = d.relayedID(ctx, deviceID, sr.Source); err != nil {
				return err
			}
		}
		obs = append(obs, store.Observation{
			PatientID: d.patientID, DeviceID: deviceID, Seq: sr.Seq,
			Code: sr.Reading.Code, Value: sr.Reading.Value, Unit: sr.Reading.Unit,
			EffectiveAt: sr.Reading.Time.UTC(), ReceivedAt: now, Flags: sr.Reading.Flags,
			Relayed: relayed,
		})
	}
	err := d.st.AppendObservations(ctx, deviceID, lastSeq, obs)
	if err == nil && cap(obs) <= maxSinkObservations {
		clear(obs) // its strings may go
		d.obs = obs[:0]
	}
	return err
}

// relayedID is the ID of the Bluetooth device that relay relays as name,
// kept in the store at the first of its readings and remembered here: a
// relay has at most store.MaxRelayedDevices, so the sink asks the store
// once per name. A relay that has as many as it may has a new one's
// readings stored as its own (0), as before relayed devices were kept:
// nothing is lost, the store does not grow with invented names, and the
// sink asks no more (relayed devices are never deleted).
func (d *deviceSink) relayedID(ctx context.Context, relay int64, name string) (int64, error) {
	if id, ok := d.relayed[name]; ok {
		return id, nil
	}
	if d.relayFull {
		return 0, nil
	}
	if d.relayed == nil {
		d.relayed = make(map[string]int64)
	}
	rd, err := d.st.RelayedDevice(ctx, relay, name)
	if errors.Is(err, store.ErrTooManyRelayed) {
		// The relay's devices, kept by this connection or an earlier one,
		// are all the names it has: remember them, and the rest are 0.
		all, err := d.st.RelayedDevices(ctx, d.patientID)
		if err != nil {
			return 0, err
		}
		for _, rd := range all {
			if rd.RelayID == relay {
				d.relayed[rd.Name] = rd.ID
			}
		}
		d.relayFull = true
		if d.log != nil {
			d.log.WarnContext(ctx, "relayed device not kept: its relay has as many as it may; its readings are stored as the relay's", "device", relay, "max", store.MaxRelayedDevices)
		}
		return d.relayed[name], nil
	}
	if err != nil {
		return 0, err
	}
	d.relayed[name] = rd.ID
	return rd.ID, nil
}

// deviceEvent records a device connecting or disconnecting, for the
// patient's timeline, and tells the patient's viewers.
func (s *server) deviceEvent(ctx context.Context, dev socketDevice, kind string) {
	at := s.Now().UTC()
	if _, err := s.Store.AppendDeviceEvent(ctx, store.DeviceEvent{PatientID: dev.patient, DeviceID: dev.id, Device: dev.name, Kind: kind, At: at}); err != nil {
		s.Log.ErrorContext(ctx, "store device event", "device", dev.id, "event", kind, "err", err)
	}
	_ = s.Live.Publish(ctx, dev.patient, vitals.EncodeDeviceEvent(kind, dev.name, at))
}

// eventRecorder keeps the device events a relay reports for the Bluetooth
// devices it paired (the Ingester publishes them live), and which of
// those devices are connected, for when the relay's socket ends.
type eventRecorder struct {
	s   *server
	dev socketDevice

	mu        sync.Mutex
	connected map[string]bool // relayed devices whose last event was connected
}

var _ vitals.EventRecorder = (*eventRecorder)(nil)

// RecordDeviceEvent stores the event for the patient's timeline, with the
// relay that reported it; a failure is logged, since the event's sequence
// is already acknowledged.
func (e *eventRecorder) RecordDeviceEvent(ctx context.Context, dev vitals.Device, ev vitals.RelayedEvent) {
	e.mu.Lock()
	if ev.Event == vitals.DeviceConnected {
		if e.connected == nil {
			e.connected = map[string]bool{}
		}
		e.connected[ev.Name] = true
	} else {
		delete(e.connected, ev.Name)
	}
	e.mu.Unlock()
	e.store(ctx, ev.Name, ev.Event, ev.Time)
}

func (e *eventRecorder) store(ctx context.Context, name, kind string, at time.Time) {
	if _, err := e.s.Store.AppendDeviceEvent(ctx, store.DeviceEvent{PatientID: e.dev.patient, DeviceID: e.dev.id, Device: name, Relay: e.dev.name, Kind: kind, At: at}); err != nil {
		e.s.Log.ErrorContext(ctx, "store relayed device event", "device", e.dev.id, "event", kind, "err", err)
	}
}

// disconnectAll records and tells the viewers that each relayed device
// still connected has disconnected: the relay's socket is ending, and
// nothing it relays can reach Bedside without it. A device comes back with
// its own connected event once the relay is back and has it again.
func (e *eventRecorder) disconnectAll(ctx context.Context) {
	e.mu.Lock()
	names := slices.Sorted(maps.Keys(e.connected))
	e.connected = nil
	e.mu.Unlock()
	at := e.s.Now().UTC()
	for _, name := range names {
		e.store(ctx, name, vitals.DeviceDisconnected, at)
		_ = e.s.Live.Publish(ctx, e.dev.patient, vitals.EncodeRelayedEvent(vitals.DeviceDisconnected, name, e.dev.name, at))
	}
}

// browserDevice names the device credential behind a patient's browser, which
// relays the Bluetooth devices it pairs during a visit; an added device
// may not take the name.
const browserDevice = account.BrowserDevice

// deviceCredential finds who is streaming: a device token, or else a
// patient's join-link session, which streams as that patient's browser device.
func (s *server) deviceCredential(r *http.Request) (store.Credential, error) {
	ctx := r.Context()
	now := s.Now()
	if token := bearerToken(r); token != "" {
		cred, err := s.Store.CredentialByHash(ctx, store.CredentialDevice, auth.HashToken(token))
		if err != nil || !cred.RevokedAt.IsZero() || (!cred.ExpiresAt.IsZero() && !now.Before(cred.ExpiresAt)) {
			return cred, errors.New("unknown, expired or revoked device token")
		}
		// Deactivating the patient revokes their devices; this also
		// refuses a token issued past that by some other way.
		if p, err := s.Store.UserByID(ctx, cred.UserID); err != nil || !p.Active() {
			return cred, errors.New("the device's patient is deactivated")
		}
		return cred, nil
	}
	c, err := s.lookupSession(r)
	if err != nil || c.Appointment == 0 || c.User.Role != store.RolePatient {
		return store.Credential{}, errors.New("a device token (Authorization: Bearer, or ?token=) or a patient's visit session is required")
	}
	return s.browserCredential(ctx, audit.User(c.User, r), c.User.ID)
}
