package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestConsultSaysWhenVitalsOpen: the consult page carries when the visit's
// live vitals open, so that its overlay, refused before then, says when
// rather than that its connection is lost; the socket opens from then.
func TestConsultSaysWhenVitalsOpen(t *testing.T) {
	f := newFixture(t)
	doc := f.signIn(t, "doc@example.org")
	status, body := get(t, doc, fmt.Sprintf("%s/consult/%d", f.srv.URL, f.visit.ID))
	want := fmt.Sprintf(`data-vitals-from="%s"`, f.visit.Start.Add(-vitalsOpenBefore).UTC().Format(time.RFC3339))
	if status != http.StatusOK || !strings.Contains(body, want) {
		t.Fatalf("consult page: %d, lacks %s", status, want)
	}
	if !vitalsOpen(f.visit, f.visit.Start.Add(-vitalsOpenBefore)) || vitalsOpen(f.visit, f.visit.Start.Add(-vitalsOpenBefore-time.Second)) {
		t.Fatal("the live vitals do not open at the time the page says")
	}
}
