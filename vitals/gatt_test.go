package vitals

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// gattMsg is a relayed characteristic value with the bytes given in hex.
func gattMsg(characteristic, hexBytes string) string {
	b, err := hex.DecodeString(strings.ReplaceAll(hexBytes, " ", ""))
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf(`{"service":"heart_rate","characteristic":%q,"value":%q,"time":"2026-11-25T10:00:00Z"}`,
		characteristic, base64.StdEncoding.EncodeToString(b))
}

func gattEnv(seq int64, msg string) []byte {
	return fmt.Appendf(nil, `{"seq":%d,"gatt":%s}`, seq, msg)
}

func TestParseGATT(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name, msg string
		want      []Reading
	}{
		{"heart rate by Web Bluetooth's full UUID", gattMsg("00002a37-0000-1000-8000-00805f9b34fb", "00 48"),
			[]Reading{{Code: CodeHeartRate, Value: 72, Unit: "/min", Time: at}}},
		{"heart rate by number, poor contact", gattMsg("0x2A37", "04 50"),
			[]Reading{{Code: CodeHeartRate, Value: 80, Unit: "/min", Time: at, Flags: []string{"poor skin contact"}}}},
		{"blood pressure in kPa, loose cuff", gattMsg("2a35", "15 A0 F0 6B F0 00 00 48 00 02 00"),
			[]Reading{{Code: CodeSystolic, Value: 120, Unit: "mm[Hg]", Time: at, Flags: []string{"cuff too loose"}},
				{Code: CodeDiastolic, Value: 80.3, Unit: "mm[Hg]", Time: at, Flags: []string{"cuff too loose"}},
				{Code: CodeHeartRate, Value: 72, Unit: "/min", Time: at, Flags: []string{"cuff too loose"}}}},
		{"temperature in Fahrenheit, kept in Celsius", gattMsg("2A1C", "01 DB 03 00 FF"),
			[]Reading{{Code: CodeTemperature, Value: 37.06, Unit: "Cel", Time: at}}},
		{"oximeter", gattMsg("2a5f", "00 62 00 4B 00"),
			[]Reading{{Code: CodeSpO2, Value: 98, Unit: "%", Time: at}, {Code: CodeHeartRate, Value: 75, Unit: "/min", Time: at}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseGATT([]byte(c.msg))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Readings, c.want) {
				t.Errorf("readings\n got %+v\nwant %+v", p.Readings, c.want)
			}
		})
	}
}

func TestParseGATTRefuses(t *testing.T) {
	hr := gattMsg("2a37", "00 48")
	for _, c := range []struct {
		name, msg, field, reason string
	}{
		{"not an object", `[1]`, "gatt", "an array"},
		{"no characteristic", strings.Replace(hr, `"characteristic":"2a37",`, "", 1), "gatt.characteristic", "missing"},
		{"a characteristic that is not a UUID", strings.Replace(hr, `"2a37"`, `"heart_rate_measurement"`, 1), "gatt.characteristic", "not a Bluetooth UUID"},
		{"another base UUID", strings.Replace(hr, `"2a37"`, `"00002a37-0000-1000-8000-000000000000"`, 1), "gatt.characteristic", "not a Bluetooth UUID"},
		{"no value", strings.Replace(hr, `"value":"AEg=",`, "", 1), "gatt.value", "missing"},
		{"value not base64", strings.Replace(hr, `"AEg="`, `"00 48"`, 1), "gatt.value", "not base64"},
		{"value a number", strings.Replace(hr, `"AEg="`, `48`, 1), "gatt.value", "a number, want a string"},
		{"no time", strings.Replace(hr, `,"time":"2026-11-25T10:00:00Z"`, "", 1), "gatt.time", "missing"},
		{"time without zone", strings.Replace(hr, `2026-11-25T10:00:00Z`, `2026-11-25T10:00:00`, 1), "gatt.time", "not a FHIR dateTime with seconds and a time zone"},
		{"a characteristic Bedside does not read", gattMsg("2a19", "64"), "gatt.value", "not a characteristic Bedside reads"},
		{"cut short", gattMsg("2a37", "01 48"), "gatt.value", "Heart Rate Measurement: too short"},
		{"an impossible heart rate", gattMsg("2a37", "00 00"), "gatt.value", "impossible for heart rate"},
		{"an impossible temperature", gattMsg("2a1c", "00 F4 01 00 00"), "gatt.value", "impossible for body temperature"},
		{"diastolic above systolic", gattMsg("2a35", "00 50 00 78 00 00 00"), "gatt.value", "diastolic 120 is not below systolic 80"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseGATT([]byte(c.msg))
			fe, ok := err.(*FieldError)
			if !ok || fe.Field != c.field || !strings.Contains(fe.Reason, c.reason) {
				t.Fatalf("ParseGATT(%s) = %+v, %v; want a %s error saying %q", c.msg, p, err, c.field, c.reason)
			}
		})
	}
}

// TestIngesterGATT: relayed values are stored with their flags, shown
// live with them, and follow the same sequence rules as observations.
func TestIngesterGATT(t *testing.T) {
	in, st, pub := newTestIngester(t, 0)
	if r := handle(t, in, gattEnv(1, gattMsg("2a37", "04 50"))); r.ack != 1 || len(r.errs) != 0 {
		t.Fatalf("seq 1: %+v", r)
	}
	if r := handle(t, in, gattEnv(2, gattMsg("2a37", "00 00"))); r.ack != 2 || len(r.rejected) != 1 || !strings.Contains(r.errs[0], "gatt.value") {
		t.Fatalf("an impossible value: %+v; want seq 2 rejected naming gatt.value, and acked", r)
	}
	if r := handle(t, in, gattEnv(1, gattMsg("2a37", "04 50"))); r.ack != 2 || len(r.errs) != 0 {
		t.Fatalf("resend of seq 1: %+v", r)
	}
	both := fmt.Appendf(nil, `{"seq":3,"observation":%s,"gatt":%s}`, hrObs, gattMsg("2a37", "00 48"))
	if r := handle(t, in, both); r.ack != 3 || len(r.rejected) != 1 || !strings.Contains(r.errs[0], "not both") {
		t.Fatalf("observation and gatt in one envelope: %+v", r)
	}
	if st.count() != 1 || !reflect.DeepEqual(st.rows[0].Reading.Flags, []string{"poor skin contact"}) {
		t.Fatalf("stored %+v; want the one heart rate, flagged", st.rows)
	}
	want := `{"type":"reading","code":"8867-4","value":80,"unit":"/min","time":"2026-11-25T10:00:00Z","device":"Home hub","flags":["poor skin contact"]}`
	if got := pub.msgs[patientID]; len(got) != 1 || string(got[0]) != want {
		t.Fatalf("published %q, want %s", got, want)
	}
}

// BenchmarkDecode compares the two ways a reading arrives: a relayed
// Bluetooth value and the FHIR Observation a hub would send instead.
func BenchmarkDecode(b *testing.B) {
	relayed := []byte(gattMsg("00002a37-0000-1000-8000-00805f9b34fb", "00 48"))
	b.Run("gatt-heart-rate", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseGATT(relayed); err != nil {
				b.Fatal(err)
			}
		}
	})
	obs := []byte(hrObs)
	b.Run("fhir-heart-rate", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseObservation(obs); err != nil {
				b.Fatal(err)
			}
		}
	})
	bp := []byte(gattMsg("2a35", "1E 79 00 51 00 5F 00 EA 07 0C 04 09 00 00 48 00 01 03 00"))
	b.Run("gatt-blood-pressure", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseGATT(bp); err != nil {
				b.Fatal(err)
			}
		}
	})
}
