package vitals

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/bedside-health/bedside/vitals/gatt"
)

// gattMessage is a Bluetooth characteristic value as a browser (Web
// Bluetooth) or a device hub relays it: which characteristic, its bytes
// in base64, when the relay received it, and the name of the device that
// sent it (as the relay's device events name it), if the relay says.
type gattMessage struct {
	Device         *string `json:"device"`
	Service        string  `json:"service"`
	Characteristic string  `json:"characteristic"`
	Value          *string `json:"value"`
	Time           string  `json:"time"`
}

// bluetoothBase is the Bluetooth base UUID's tail: a 16-bit assigned
// number N is the 128-bit UUID 0000NNNN-0000-1000-8000-00805f9b34fb.
const bluetoothBase = "-0000-1000-8000-00805f9b34fb"

// characteristicOf reads a characteristic as Web Bluetooth names it (the
// 128-bit UUID) or by its 16-bit number ("2a37", "0x2A37").
func characteristicOf(s string) (uint16, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) == 36 && strings.HasPrefix(s, "0000") && strings.HasSuffix(s, bluetoothBase) {
		s = s[4:8]
	}
	s = strings.TrimPrefix(s, "0x")
	if len(s) != 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 16, 16)
	return uint16(n), err == nil
}

// ParseGATT reads a relayed characteristic value ({"characteristic",
// "value", "time"}) into readings, each checked against the catalogue as
// a FHIR Observation's would be. What the device reports about the
// measurement rides along as the readings' Flags. The relay's time is the
// readings' time: a device's own clock has no zone and is often unset.
// The device's name, when given, is the readings' Source.
func ParseGATT(raw json.RawMessage) (Parsed, error) {
	var m gattMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return Parsed{}, decodeError("gatt", err)
	}
	var p Parsed
	if m.Device != nil {
		name, err := relayedName("gatt.device", *m.Device)
		if err != nil {
			return Parsed{}, err
		}
		p.Source = name
	}
	if m.Characteristic == "" {
		return Parsed{}, fieldErr("gatt.characteristic", "missing")
	}
	ch, ok := characteristicOf(m.Characteristic)
	if !ok {
		return Parsed{}, fieldErr("gatt.characteristic", "%q is not a Bluetooth UUID such as 2a37 or 00002a37%s", truncate(m.Characteristic, 40), bluetoothBase)
	}
	if m.Value == nil {
		return Parsed{}, fieldErr("gatt.value", "missing")
	}
	b, err := base64.StdEncoding.DecodeString(*m.Value)
	if err != nil {
		return Parsed{}, fieldErr("gatt.value", "not base64: %v", err)
	}
	if m.Time == "" {
		return Parsed{}, fieldErr("gatt.time", "missing")
	}
	when, err := parseDateTime("gatt.time", m.Time)
	if err != nil {
		return Parsed{}, err
	}
	meas, err := gatt.Parse(ch, b)
	if err != nil {
		return Parsed{}, fieldErr("gatt.value", "%v", err)
	}
	for _, v := range meas.Values {
		var r Reading
		if err := checkedReading("gatt.value", "", v.Code, v.V, v.Unit, &when, &r); err != nil {
			return Parsed{}, err
		}
		r.Flags = append(r.Flags, meas.Problems...)
		p.Readings = append(p.Readings, r)
	}
	if err := checkPanel(p.Readings, "gatt.value"); err != nil {
		return Parsed{}, err
	}
	return p, nil
}

// checkPanel refuses a blood pressure whose diastolic is not below its
// systolic.
func checkPanel(rs []Reading, field string) error {
	var sys, dia *Reading
	for i := range rs {
		switch rs[i].Code {
		case CodeSystolic:
			sys = &rs[i]
		case CodeDiastolic:
			dia = &rs[i]
		}
	}
	if sys != nil && dia != nil && dia.Value >= sys.Value {
		return fieldErr(field, "diastolic %s is not below systolic %s", fmtNum(dia.Value), fmtNum(sys.Value))
	}
	return nil
}
