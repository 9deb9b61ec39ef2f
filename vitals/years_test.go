package vitals

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestEffectiveTimeOutsideWritableYearsIsRejected: an effectiveDateTime
// whose instant falls outside the years 0001 to 9999 in UTC (here
// 9999-12-31T23:30:00-01:00, which is 10000-01-01T00:30Z) cannot be
// written as a FHIR dateTime nor as the live message's time, so it is
// rejected like any other bad field, and nothing is stored or published;
// the last writable instants are accepted.
func TestEffectiveTimeOutsideWritableYearsIsRejected(t *testing.T) {
	for _, when := range []string{"9999-12-31T23:30:00-01:00", "0000-01-01T00:30:00+01:00", "0000-06-01T00:00:00Z"} {
		st, pub := newMemStore(t), &memPub{}
		in := NewIngester(st, pub, Device{ID: devID, PatientID: patientID, Name: "Home hub"})
		obs := strings.Replace(hrObs, at, when, 1)
		replies := in.Handle(context.Background(), env(1, obs))
		rejected := false
		for _, b := range replies {
			var r reply
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if r.Seq != nil && *r.Seq == 1 && strings.Contains(r.Error, "effectiveDateTime") {
				rejected = true
			}
		}
		if !rejected || st.count() != 0 || pub.count(patientID) != 0 {
			t.Errorf("effectiveDateTime %s: replies %q, stored %d, published %d; want a rejection naming observation.effectiveDateTime and nothing stored or published",
				when, replies, st.count(), pub.count(patientID))
		}
	}
}

func TestEffectiveTimeAtTheWritableEdgesIsStored(t *testing.T) {
	for i, when := range []string{"9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z", "0001-01-01T01:00:00+01:00"} {
		st, pub := newMemStore(t), &memPub{}
		in := NewIngester(st, pub, Device{ID: devID, PatientID: patientID, Name: "Home hub"})
		replies := in.Handle(context.Background(), env(1, strings.Replace(hrObs, at, when, 1)))
		if st.count() != 1 || pub.count(patientID) == 0 {
			t.Errorf("case %d, effectiveDateTime %s: replies %q, stored %d, published %d; want it stored and shown",
				i, when, replies, st.count(), pub.count(patientID))
		}
	}
}
