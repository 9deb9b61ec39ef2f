package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/vitals"
)

// A patient's second: ten ECG chunks 100 ms apart and five numerics placed
// between them, so a device sends evenly, 15 messages a second.
type slot struct {
	at      time.Duration // after the start of the second
	numeric int           // index into numerics, or -1 for an ECG chunk
}

var schedule = func() []slot {
	var s []slot
	for k := range 10 {
		s = append(s, slot{at: time.Duration(k) * 100 * time.Millisecond, numeric: -1})
		if k%2 == 0 {
			s = append(s, slot{at: time.Duration(k)*100*time.Millisecond + 50*time.Millisecond, numeric: k / 2})
		}
	}
	return s
}()

// numerics are the five 1 Hz readings: single values, so each is one
// stream message, as each ECG chunk is.
var numerics = []struct {
	code, unit, value string
}{
	{"8867-4", "/min", "72"},     // heart rate
	{"59408-5", "%", "97"},       // SpO2
	{"9279-1", "/min", "16"},     // respiratory rate
	{"8310-5", "Cel", "36.8"},    // body temperature
	{"15074-8", "mmol/L", "5.4"}, // glucose
}

// ecg is one second of a 250 Hz lead II trace in µV steps, ten chunks of 25.
var ecg = func() []float64 {
	d := make([]float64, 250)
	for i := range d {
		x := float64(i) / 250
		d[i] = math.Round(80*math.Sin(2*math.Pi*x) + 900*math.Exp(-math.Pow((x-0.3)/0.01, 2)))
	}
	return d
}()

// appendNumeric appends the JSON envelope of numeric n measured at t.
func appendNumeric(b []byte, seq int64, n int, t time.Time) []byte {
	m := numerics[n]
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"observation":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"`...)
	b = append(b, m.code...)
	b = append(b, `"}]},"effectiveDateTime":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","valueQuantity":{"value":`...)
	b = append(b, m.value...)
	b = append(b, `,"unit":"`...)
	b = append(b, m.unit...)
	b = append(b, `","system":"http://unitsofmeasure.org","code":"`...)
	b = append(b, m.unit...)
	b = append(b, `"}}}`...)
	return b
}

// appendECG appends the binary waveform frame of chunk k (0–9) of a second,
// its first sample at t.
func appendECG(b []byte, seq int64, k int, t time.Time) ([]byte, error) {
	return vitals.AppendWaveFrame(b, seq, &vitals.Waveform{
		Code: "131330", OriginUnit: "mV", Period: 4, Factor: 0.001, Dimensions: 1,
		Data: ecg[25*k : 25*k+25], Time: t,
	})
}

// measuredAt reads the seq and scheduled time a device frame carries, as
// the relay delivers it untouched.
func measuredAt(kind int, b []byte) (seq int64, at time.Time, err error) {
	if kind == websocket.BinaryMessage {
		if len(b) < 56 {
			return 0, time.Time{}, fmt.Errorf("waveform frame of %d bytes", len(b))
		}
		le := binary.LittleEndian
		return int64(le.Uint64(b[8:])), time.Unix(0, int64(le.Uint64(b[48:]))), nil
	}
	seq, at, err = envelopeAt(b)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("device envelope: %w", err)
	}
	return seq, at, nil
}

// device is one patient's simulated hub on one connection. One goroutine
// writes (stream), another reads the server's replies.
type device struct {
	ws     *websocket.Conn
	next   int64           // the next sequence to send
	sent   atomic.Int64    // measurements sent in the measured run
	late   []time.Duration // how long after its scheduled time each was written; the stream's own
	errs   atomic.Int64    // error replies from the server
	first  sync.Once
	errMsg atomic.Value // the first error reply or failure, a string
}

// dialDevice connects a device. Against the server (acked), it sends one
// heart rate and waits for its ack, which also says where the device's
// sequence stands after earlier runs; through the relay sequences start at 1.
func dialDevice(ctx context.Context, url string, h http.Header, acked bool) (*device, error) {
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	ws, resp, err := d.DialContext(ctx, url, h)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w: %s", err, resp.Status)
		}
		return nil, fmt.Errorf("dial device %s: %w", url, err)
	}
	dev := &device{ws: ws, next: 1}
	if !acked {
		go dev.read()
		return dev, nil
	}
	_ = ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, appendNumeric(nil, 1, 0, time.Now())); err != nil {
		ws.Close()
		return nil, fmt.Errorf("device first message: %w", err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var r struct {
			Ack   *int64 `json:"ack"`
			Error string `json:"error"`
		}
		_, b, err := ws.ReadMessage()
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil {
			ws.Close()
			return nil, fmt.Errorf("device first ack: %w", err)
		}
		if r.Ack != nil {
			dev.next = max(*r.Ack, 1) + 1
			break
		}
		if r.Error != "" {
			ws.Close()
			return nil, fmt.Errorf("device first message refused: %s", r.Error)
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	go dev.read()
	return dev, nil
}

func (d *device) fail(msg string) {
	d.first.Do(func() { d.errMsg.Store(msg) })
}

// firstError returns the first problem seen, or "".
func (d *device) firstError() string {
	s, _ := d.errMsg.Load().(string)
	return s
}

// read discards acks and counts error replies until the connection ends.
func (d *device) read() {
	for {
		_, b, err := d.ws.ReadMessage()
		if err != nil {
			return
		}
		if bytes.Contains(b, []byte(`"error"`)) {
			d.errs.Add(1)
			d.fail(string(b))
		}
	}
}

// stream sends the schedule from t0 until end, open-loop: each message is
// sent at its scheduled time, or at once if the device is behind, and
// carries its scheduled time.
func (d *device) stream(ctx context.Context, t0, end time.Time) {
	var buf []byte
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for sec := 0; ; sec++ {
		for _, s := range schedule {
			at := t0.Add(time.Duration(sec)*time.Second + s.at)
			if !at.Before(end) {
				return
			}
			if wait := time.Until(at); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
			kind := websocket.TextMessage
			if s.numeric >= 0 {
				buf = appendNumeric(buf[:0], d.next, s.numeric, at)
			} else {
				var err error
				kind = websocket.BinaryMessage
				if buf, err = appendECG(buf[:0], d.next, int(s.at/(100*time.Millisecond)), at); err != nil {
					d.fail(err.Error())
					return
				}
			}
			now := time.Now()
			d.late = append(d.late, now.Sub(at))
			_ = d.ws.SetWriteDeadline(now.Add(30 * time.Second))
			if err := d.ws.WriteMessage(kind, buf); err != nil {
				if !errors.Is(err, websocket.ErrCloseSent) {
					d.fail("write: " + err.Error())
				}
				return
			}
			d.next++
			d.sent.Add(1)
		}
	}
}

func (d *device) close() {
	_ = d.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	d.ws.Close()
}
