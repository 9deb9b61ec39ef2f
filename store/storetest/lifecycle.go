package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

func testReschedule(t *testing.T, st store.Store) {
	ctx := context.Background()
	d := user(t, st, "d@example.org", store.RolePhysician)
	p := user(t, st, "p@example.org", store.RolePatient)
	b := booker{st, p.ID}
	a, err := b.book(d.ID, slotAt(9), 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.book(d.ID, slotAt(11), 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialJoin, TokenHash: []byte("join-a"), UserID: p.ID, AppointmentID: a.ID}); err != nil {
		t.Fatal(err)
	}
	keep, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialJoin, TokenHash: []byte("join-other"), UserID: p.ID, AppointmentID: other.ID})
	if err != nil {
		t.Fatal(err)
	}
	// The patient's sessions opened by each visit's link, and a staff one.
	for _, s := range []store.Session{{TokenHash: []byte("sess-a"), UserID: p.ID, AppointmentID: a.ID},
		{TokenHash: []byte("sess-other"), UserID: p.ID, AppointmentID: other.ID}, {TokenHash: []byte("sess-staff"), UserID: d.ID}} {
		s.CreatedAt, s.LastSeenAt, s.ExpiresAt = slotAt(0), slotAt(0), slotAt(0).Add(48*time.Hour)
		if err := st.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	if list, err := st.JoinCredentials(ctx, a.ID); err != nil || len(list) != 1 || string(list[0].TokenHash) != "join-a" {
		t.Fatalf("JoinCredentials of the first visit = %+v, %v; want its one link", list, err)
	}
	if list, err := st.JoinCredentials(ctx, 9999); err != nil || len(list) != 0 {
		t.Fatalf("JoinCredentials of a missing visit = %+v, %v; want none", list, err)
	}

	// Into the other visit's time, even by a millisecond: refused, nothing changed.
	_, err = st.RescheduleAppointment(ctx, a.ID, slotAt(11).Add(29*time.Minute+59*time.Second), slotAt(12), store.Change{ActorID: d.ID})
	wantErr(t, "moving onto another visit", err, scheduling.ErrSlotTaken)
	if got, _ := st.AppointmentByID(ctx, a.ID); !got.Start.Equal(slotAt(9)) || got.Sequence != 0 {
		t.Fatalf("a refused move changed the appointment: %+v", got)
	}
	if c, _ := st.CredentialByHash(ctx, store.CredentialJoin, []byte("join-a")); !c.RevokedAt.IsZero() {
		t.Fatal("a refused move revoked the join link")
	}

	// Overlapping its own old time is fine.
	at := slotAt(1)
	moved, err := st.RescheduleAppointment(ctx, a.ID, slotAt(9).Add(15*time.Minute), slotAt(9).Add(45*time.Minute), store.Change{ActorID: d.ID, At: at, Reason: "clinic running late"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := st.AppointmentByID(ctx, a.ID)
	if !sameAppointment(got, moved) || !got.Start.Equal(slotAt(9).Add(15*time.Minute)) || got.Sequence != 1 || !got.UpdatedAt.Equal(at) {
		t.Fatalf("after moving: stored %+v, returned %+v; want 09:15, sequence 1", got, moved)
	}
	if c, _ := st.CredentialByHash(ctx, store.CredentialJoin, []byte("join-a")); !c.RevokedAt.Equal(at) {
		t.Errorf("the moved visit's join link: revoked at %v, want %v", c.RevokedAt, at)
	}
	if c, _ := st.CredentialByHash(ctx, store.CredentialJoin, keep.TokenHash); !c.RevokedAt.IsZero() {
		t.Error("moving one visit revoked another visit's join link")
	}
	if _, err := st.SessionByHash(ctx, []byte("sess-a")); err == nil {
		t.Error("the session the moved visit's link opened survived the move")
	}
	for _, h := range []string{"sess-other", "sess-staff"} {
		if _, err := st.SessionByHash(ctx, []byte(h)); err != nil {
			t.Errorf("moving one visit ended session %s: %v", h, err)
		}
	}
	if _, err := b.book(d.ID, slotAt(9), 15*time.Minute); err != nil {
		t.Errorf("the time a visit moved out of is still held: %v", err)
	}
	if _, err := st.SetAppointmentStatus(ctx, other.ID, scheduling.StatusArrived, store.Change{}); err != nil {
		t.Fatal(err)
	}
	_, err = st.RescheduleAppointment(ctx, other.ID, slotAt(15), slotAt(16), store.Change{})
	wantErr(t, "moving a checked-in visit", err, scheduling.ErrTransition)
	_, err = st.RescheduleAppointment(ctx, 9999, slotAt(15), slotAt(16), store.Change{})
	wantErr(t, "moving a missing visit", err, store.ErrNotFound)
	if _, err := st.RescheduleAppointment(ctx, a.ID, slotAt(16), slotAt(15), store.Change{}); err == nil {
		t.Error("a move ending before it starts was accepted")
	}
}

func testHistory(t *testing.T, st store.Store) {
	ctx := context.Background()
	d := user(t, st, "d@example.org", store.RolePhysician)
	s := user(t, st, "s@example.org", store.RoleScheduler)
	p := user(t, st, "p@example.org", store.RolePatient)
	a, err := st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID, Start: slotAt(9), End: slotAt(10)},
		store.Change{ActorID: s.ID, At: slotAt(1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RescheduleAppointment(ctx, a.ID, slotAt(13), slotAt(14), store.Change{ActorID: s.ID, At: slotAt(2), Reason: "asked by patient"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetAppointmentStatus(ctx, a.ID, scheduling.StatusCancelled, store.Change{ActorID: s.ID, At: slotAt(3), Reason: "no longer needed"}); err != nil {
		t.Fatal(err)
	}
	// A refused change leaves no trace.
	if _, err := st.SetAppointmentStatus(ctx, a.ID, scheduling.StatusArrived, store.Change{ActorID: s.ID}); err == nil {
		t.Fatal("checking in a cancelled visit was accepted")
	}
	h, err := st.AppointmentHistory(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h {
		if e.AppointmentID != a.ID || e.ActorID != s.ID {
			t.Errorf("event %+v: wrong appointment or actor", e)
		}
		got = append(got, fmt.Sprintf("%s %s>%s %s-%s>%s-%s %q @%s", e.Kind, e.FromStatus, e.ToStatus,
			hm(e.OldStart), hm(e.OldEnd), hm(e.NewStart), hm(e.NewEnd), e.Reason, hm(e.At)))
	}
	want := []string{
		`booked >booked ->09:00-10:00 "" @01:00`,
		`rescheduled booked>booked 09:00-10:00>13:00-14:00 "asked by patient" @02:00`,
		`status booked>cancelled ->- "no longer needed" @03:00`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("history:\n%q\nwant\n%q", got, want)
	}
	_, err = st.AppointmentHistory(ctx, 9999)
	wantErr(t, "history of a missing visit", err, store.ErrNotFound)
}

// hm is an instant's UTC hour and minute, or "" for the zero time.
func hm(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("15:04")
}

func testSearchUsers(t *testing.T, st store.Store) {
	ctx := context.Background()
	mk := func(email, name, born string, role store.Role) store.User {
		u, err := st.CreateUser(ctx, store.User{Email: email, Name: name, Role: role, BirthDate: born, Phone: "+44 20 7946 0000"})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	maria := mk("maria.silva@example.org", "Maria Silva", "1961-04-12", store.RolePatient)
	mario := mk("mario@example.org", "Mario Rossi", "1980-01-02", store.RolePatient)
	pct := mk("pct@example.org", "Ann 100% Sure_x", "", store.RolePatient)
	mk("dr.maria@example.org", "Maria Okafor", "", store.RolePhysician)
	if got, _ := st.UserByID(ctx, maria.ID); got.BirthDate != "1961-04-12" || got.Phone != "+44 20 7946 0000" {
		t.Fatalf("birth date and phone not kept: %+v", got)
	}
	if _, err := st.CreateUser(ctx, store.User{Email: "x@example.org", Name: "X", Role: store.RolePatient, BirthDate: "1961-02-30"}); err == nil {
		t.Error("a birth date of 30 February was accepted")
	}
	ids := func(q store.UserQuery) string {
		t.Helper()
		list, total, err := st.SearchUsers(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, u := range list {
			out = append(out, u.ID)
		}
		return fmt.Sprint(out, total)
	}
	for _, c := range []struct {
		name string
		q    store.UserQuery
		want string
	}{
		{"name part, any case", store.UserQuery{Role: store.RolePatient, Text: "MARI"}, fmt.Sprint([]int64{maria.ID, mario.ID}, 2)},
		{"every word must match", store.UserQuery{Role: store.RolePatient, Text: "maria silva"}, fmt.Sprint([]int64{maria.ID}, 1)},
		{"email part", store.UserQuery{Text: "silva@"}, fmt.Sprint([]int64{maria.ID}, 1)},
		{"role filters", store.UserQuery{Role: store.RolePhysician, Text: "silva"}, fmt.Sprint([]int64(nil), 0)},
		{"exact email, any case", store.UserQuery{Email: "MARIO@example.org"}, fmt.Sprint([]int64{mario.ID}, 1)},
		{"birth date", store.UserQuery{BirthDate: "1961-04-12"}, fmt.Sprint([]int64{maria.ID}, 1)},
		{"wildcards are literal", store.UserQuery{Text: "100%"}, fmt.Sprint([]int64{pct.ID}, 1)},
		{"underscore is literal", store.UserQuery{Text: "e_x"}, fmt.Sprint([]int64{pct.ID}, 1)},
		{"a page, total of all", store.UserQuery{Role: store.RolePatient, Limit: 1, Offset: 1}, fmt.Sprint([]int64{maria.ID}, 3)},
	} {
		if got := ids(c.q); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	upd, err := st.UpdateUser(ctx, store.User{ID: mario.ID, Name: "Mario R. Rossi", TimeZone: "Europe/Rome", BirthDate: "1980-01-03", Phone: "+39 06 000"})
	if err != nil || upd.Name != "Mario R. Rossi" || upd.TimeZone != "Europe/Rome" || upd.BirthDate != "1980-01-03" || upd.Email != mario.Email || upd.Role != mario.Role {
		t.Fatalf("UpdateUser = %+v, %v", upd, err)
	}
	_, err = st.UpdateUser(ctx, store.User{ID: 9999, Name: "x"})
	wantErr(t, "updating a missing user", err, store.ErrNotFound)
}

func testSearchAppointments(t *testing.T, st store.Store) {
	ctx := context.Background()
	d := user(t, st, "d@example.org", store.RolePhysician)
	p1 := user(t, st, "p1@example.org", store.RolePatient)
	p2 := user(t, st, "p2@example.org", store.RolePatient)
	var all []int64
	for h := 8; h < 13; h++ {
		p := p1
		if h%2 == 0 {
			p = p2
		}
		a, err := booker{st, p.ID}.book(d.ID, slotAt(h), 30*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, a.ID)
	}
	if _, err := st.SetAppointmentStatus(ctx, all[1], scheduling.StatusCancelled, store.Change{}); err != nil {
		t.Fatal(err)
	}
	ids := func(q store.AppointmentQuery) string {
		t.Helper()
		list, total, err := st.SearchAppointments(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, a := range list {
			out = append(out, a.ID)
		}
		return fmt.Sprint(out, total)
	}
	for _, c := range []struct {
		name string
		q    store.AppointmentQuery
		want string
	}{
		{"all, cancelled included", store.AppointmentQuery{PhysicianID: d.ID}, fmt.Sprint(all, 5)},
		{"by patient", store.AppointmentQuery{PatientID: p1.ID}, fmt.Sprint([]int64{all[1], all[3]}, 2)},
		{"by status", store.AppointmentQuery{Statuses: []scheduling.Status{scheduling.StatusCancelled}}, fmt.Sprint([]int64{all[1]}, 1)},
		{"two statuses", store.AppointmentQuery{Statuses: []scheduling.Status{scheduling.StatusCancelled, scheduling.StatusBooked}, Limit: 2}, fmt.Sprint(all[:2], 5)},
		{"range [from, to)", store.AppointmentQuery{From: slotAt(9), To: slotAt(11)}, fmt.Sprint(all[1:3], 2)},
		{"paging", store.AppointmentQuery{Limit: 2, Offset: 4}, fmt.Sprint(all[4:], 5)},
	} {
		if got := ids(c.q); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func testOutbox(t *testing.T, st store.Store) {
	ctx := context.Background()
	t0 := slotAt(8)
	m := store.Message{Key: "reminder-24h:7:0", AppointmentID: 7, Kind: "reminder", To: "p@example.org", ToName: "P",
		Subject: "Your video visit tomorrow", Text: "Join: https://clinic.example/join/x", Calendar: []byte("BEGIN:VCALENDAR\r\n"), Method: "REQUEST", CreatedAt: t0}
	first, created, err := st.EnqueueMessage(ctx, m)
	if err != nil || !created || first.ID == 0 {
		t.Fatalf("EnqueueMessage = %+v, %v, %v", first, created, err)
	}
	// The same key again, as after a restart: nothing new.
	m.Subject = "changed"
	again, created, err := st.EnqueueMessage(ctx, m)
	if err != nil || created || again.ID != first.ID || again.Subject != "Your video visit tomorrow" {
		t.Fatalf("enqueueing a key twice = %+v, %v, %v; want the first message back", again, created, err)
	}
	if _, _, err := st.EnqueueMessage(ctx, store.Message{Key: "k"}); err == nil {
		t.Error("a message without a recipient was accepted")
	}
	second, _, err := st.EnqueueMessage(ctx, store.Message{Key: "invite:8:0", AppointmentID: 8, To: "q@example.org", Subject: "s", Text: "t", CreatedAt: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	const lease = 3 * time.Minute
	due := func(now time.Time) string {
		t.Helper()
		list, err := st.ClaimMessages(ctx, now, lease, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, m := range list {
			out = append(out, m.ID)
		}
		return fmt.Sprint(out)
	}
	if got, want := due(t0), fmt.Sprint([]int64{first.ID}); got != want {
		t.Errorf("due at t0: %s, want %s", got, want)
	}
	// Claimed: nobody else takes it during the lease; after it, it is due again.
	if got, want := due(t0.Add(30*time.Second)), fmt.Sprint([]int64(nil)); got != want {
		t.Errorf("claimed again within the lease: %s", got)
	}
	if got, want := due(t0.Add(lease)), fmt.Sprint([]int64{first.ID, second.ID}); got != want {
		t.Errorf("due when the lease ran out: %s, want %s", got, want)
	}
	if err := st.MarkMessageFailed(ctx, first.ID, "451 try later", t0.Add(10*time.Minute), false); err != nil {
		t.Fatal(err)
	}
	if got, want := due(t0.Add(lease+lease)), fmt.Sprint([]int64{second.ID}); got != want {
		t.Errorf("due while the first waits to retry: %s, want %s", got, want)
	}
	if err := st.MarkMessageSent(ctx, second.ID, t0.Add(6*time.Minute), "smtp"); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkMessageFailed(ctx, first.ID, "550 no such user", t0.Add(20*time.Minute), true); err != nil {
		t.Fatal(err)
	}
	if got := due(t0.Add(time.Hour)); got != "[]" {
		t.Errorf("due after delivery and a permanent failure: %s, want none", got)
	}
	list, err := st.ListMessages(ctx, 0, 10, 0)
	if err != nil || len(list) != 2 || list[0].ID != second.ID {
		t.Fatalf("ListMessages = %+v, %v; want newest first", list, err)
	}
	if s := list[0]; s.Via != "smtp" || !s.SentAt.Equal(t0.Add(6*time.Minute)) || s.Attempts != 1 {
		t.Errorf("sent message = %+v", s)
	}
	if f := list[1]; !f.Failed || f.LastError != "550 no such user" || f.Attempts != 2 || string(f.Calendar) != "BEGIN:VCALENDAR\r\n" || f.Method != "REQUEST" {
		t.Errorf("failed message = %+v", f)
	}
	if l, _ := st.ListMessages(ctx, 8, 10, 0); len(l) != 1 || l[0].ID != second.ID {
		t.Errorf("messages of appointment 8: %+v", l)
	}
	if got, err := st.MessageByID(ctx, first.ID); err != nil || got.Key != first.Key || got.Text != first.Text || !got.Failed {
		t.Errorf("MessageByID = %+v, %v", got, err)
	}
	_, err = st.MessageByID(ctx, 9999)
	wantErr(t, "a missing message", err, store.ErrNotFound)
	testConcurrentClaims(t, st)
	wantErr(t, "marking a missing message", st.MarkMessageSent(ctx, 9999, t0, "smtp"), store.ErrNotFound)
}

// testConcurrentClaims: nodes claiming at once never take the same message.
func testConcurrentClaims(t *testing.T, st store.Store) {
	ctx := context.Background()
	t0 := slotAt(20)
	for i := range 40 {
		if _, _, err := st.EnqueueMessage(ctx, store.Message{Key: fmt.Sprintf("claim:%d", i), To: "x@example.org", Subject: "s", Text: "t", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				list, err := st.ClaimMessages(ctx, t0, time.Hour, 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(list) == 0 {
					return
				}
				mu.Lock()
				for _, m := range list {
					seen[m.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 40 {
		t.Errorf("%d of 40 messages claimed", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %d claimed %d times", id, n)
		}
	}
}

// testAppointmentZone: a visit keeps the zone it was booked in when its
// physician's zone later changes, and a move takes the zone of the moment.
func testAppointmentZone(t *testing.T, st store.Store) {
	ctx := context.Background()
	d := user(t, st, "d@example.org", store.RolePhysician)
	p := user(t, st, "p@example.org", store.RolePatient)
	b := booker{st, p.ID}
	a, err := b.book(d.ID, slotAt(9), 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if a.Zone != "Europe/London" {
		t.Fatalf("booked with zone %q, want the physician's Europe/London", a.Zone)
	}
	given, err := st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID,
		Start: slotAt(11), End: slotAt(11).Add(30 * time.Minute), Zone: "Australia/Adelaide"}, store.Change{})
	if err != nil || given.Zone != "Australia/Adelaide" {
		t.Fatalf("booked with a given zone: %q, %v; want Australia/Adelaide", given.Zone, err)
	}
	d.TimeZone = "America/New_York"
	if _, err := st.UpdateUser(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got, err := st.AppointmentByID(ctx, a.ID); err != nil || got.Zone != "Europe/London" {
		t.Fatalf("after the physician moved zone the visit says %q, %v; want the zone it was booked in", got.Zone, err)
	}
	moved, err := st.RescheduleAppointment(ctx, a.ID, slotAt(13), slotAt(13).Add(30*time.Minute), store.Change{})
	if err != nil || moved.Zone != "America/New_York" {
		t.Fatalf("moved: zone %q, %v; want the physician's zone now, America/New_York", moved.Zone, err)
	}
	if got, _ := st.AppointmentByID(ctx, a.ID); got.Zone != moved.Zone {
		t.Errorf("stored zone %q after the move, returned %q", got.Zone, moved.Zone)
	}
}
