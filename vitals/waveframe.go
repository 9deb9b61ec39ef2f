package vitals

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// The binary waveform frame (docs/protocol.md, "Binary waveform frames"):
// a fixed little-endian header, the origin's unit, then int16 samples.
const (
	// WaveFrameMagic opens every binary waveform frame.
	WaveFrameMagic = "BSWF"
	// WaveFrameVersion is the frame layout this package reads and writes.
	WaveFrameVersion = 1
	// WaveFrameHeader is the fixed header's size in bytes, before the unit.
	WaveFrameHeader = 56
	// WaveFrameGap is the sample value that marks a gap (FHIR's E).
	WaveFrameGap = math.MinInt16
	// maxFrameUnit bounds the unit's length in bytes.
	maxFrameUnit = 32
)

// Offsets of the header's fields.
const (
	offVersion  = 4
	offUnitLen  = 5
	offReserved = 6
	offSeq      = 8
	offCode     = 16
	offCount    = 20
	offPeriod   = 24
	offFactor   = 32
	offOrigin   = 40
	offTime     = 48
)

// WaveFrameSeq reads a binary waveform frame's sequence number, checking
// only what comes before it (magic, version). Its errors mean the frame's
// sequence cannot be known, so it cannot be rejected by number.
func WaveFrameSeq(b []byte) (int64, error) {
	switch {
	case len(b) >= offVersion && string(b[:offVersion]) != WaveFrameMagic:
		return 0, fieldErr("frame.magic", "% x, want %q (% x)", b[:offVersion], WaveFrameMagic, WaveFrameMagic)
	case len(b) > offVersion && b[offVersion] != WaveFrameVersion:
		return 0, fieldErr("frame.version", "%d: this server reads version %d", b[offVersion], WaveFrameVersion)
	case len(b) < offSeq+8:
		return 0, fieldErr("frame", "%d bytes: too short for a waveform frame's header (%d bytes)", len(b), WaveFrameHeader)
	}
	seq := int64(binary.LittleEndian.Uint64(b[offSeq:]))
	if seq < 1 {
		return 0, fieldErr("frame.seq", "%d is not a whole number from 1 up", seq)
	}
	return seq, nil
}

// DecodeWaveFrame decodes a binary waveform frame into the Waveform the
// same chunk sent as FHIR SampledData yields. seq is the frame's sequence
// number whenever it could be read, even with an error, so the frame can be
// rejected by number; every error is a *FieldError naming a "frame" field.
func DecodeWaveFrame(b []byte) (seq int64, w *Waveform, err error) {
	w = new(Waveform)
	if seq, err = decodeWaveFrame(b, w); err != nil {
		return seq, nil, err
	}
	return seq, w, nil
}

// decodeWaveFrame is DecodeWaveFrame into w, reusing w.Data's array;
// after an error, what w holds means nothing.
func decodeWaveFrame(b []byte, w *Waveform) (seq int64, err error) {
	seq, err = WaveFrameSeq(b)
	if err != nil {
		return 0, err
	}
	if len(b) < WaveFrameHeader {
		return seq, fieldErr("frame", "%d bytes: too short for a waveform frame's header (%d bytes)", len(b), WaveFrameHeader)
	}
	le := binary.LittleEndian
	if r := le.Uint16(b[offReserved:]); r != 0 {
		return seq, fieldErr("frame.reserved", "%d, must be 0", r)
	}
	code, ok := waveformCode(le.Uint32(b[offCode:]))
	if !ok {
		return seq, fieldErr("frame.code", "%s is not a waveform Bedside accepts (%s, %s, %s or %s)", code, CodeECG, CodeECGLeadI, CodeECGLeadII, CodePleth)
	}
	count := le.Uint32(b[offCount:])
	if count == 0 || count > maxSamples {
		return seq, fieldErr("frame.count", "%d samples, want 1 to %d per frame", count, maxSamples)
	}
	*w = Waveform{
		Code:       code,
		Period:     math.Float64frombits(le.Uint64(b[offPeriod:])),
		Factor:     math.Float64frombits(le.Uint64(b[offFactor:])),
		Origin:     math.Float64frombits(le.Uint64(b[offOrigin:])),
		Dimensions: 1,
		Time:       time.Unix(0, int64(le.Uint64(b[offTime:]))).UTC(),
		Data:       w.Data[:0],
	}
	switch {
	case !(w.Period > 0) || math.IsInf(w.Period, 0):
		return seq, fieldErr("frame.period", "%s, want milliseconds above 0", fmtNum(w.Period))
	case w.Factor == 0 || math.IsNaN(w.Factor) || math.IsInf(w.Factor, 0):
		return seq, fieldErr("frame.factor", "%s, want a finite number other than 0", fmtNum(w.Factor))
	case math.IsNaN(w.Origin) || math.IsInf(w.Origin, 0):
		return seq, fieldErr("frame.origin", "%s, want a finite number", fmtNum(w.Origin))
	}
	n := int(b[offUnitLen])
	if n > maxFrameUnit {
		return seq, fieldErr("frame.unitLength", "%d, at most %d bytes", n, maxFrameUnit)
	}
	if want := WaveFrameHeader + n + 2*int(count); len(b) != want {
		return seq, fieldErr("frame.count", "%d samples and a %d-byte unit make a %d-byte frame, but it has %d bytes", count, n, want, len(b))
	}
	unit := b[WaveFrameHeader : WaveFrameHeader+n]
	for _, c := range unit {
		if c < 0x21 || c > 0x7e {
			return seq, fieldErr("frame.unit", "%q: a UCUM unit is printable ASCII without spaces", unit)
		}
	}
	w.OriginUnit = "mV" // the usual unit, without allocating
	if string(unit) != w.OriginUnit {
		w.OriginUnit = string(unit)
	}
	w.Data = slices.Grow(w.Data, int(count))[:count]
	for i, p := 0, WaveFrameHeader+n; i < len(w.Data); i, p = i+1, p+2 {
		s := int16(le.Uint16(b[p:]))
		if s == WaveFrameGap {
			w.Data[i] = math.NaN()
			continue
		}
		v := float64(s)
		if math.IsInf(w.Origin+w.Factor*v, 0) {
			return seq, fieldErr("frame.samples", "sample %d (%d) times the factor is beyond a finite number", i, s)
		}
		w.Data[i] = v
	}
	return seq, nil
}

// waveformCodes holds the waveform codes by number, as a frame carries them.
var waveformCodes = func() map[uint32]string {
	m := make(map[uint32]string, len(waveforms))
	for code := range waveforms {
		n, err := strconv.ParseUint(code, 10, 32)
		if err != nil {
			panic("vitals: waveform code " + code + " is not a number")
		}
		m[uint32(n)] = code
	}
	return m
}()

// waveformCode is the MDC code n as the catalogue spells it, and whether
// it is a waveform Bedside accepts.
func waveformCode(n uint32) (string, bool) {
	if code, ok := waveformCodes[n]; ok {
		return code, true
	}
	return strconv.FormatUint(uint64(n), 10), false
}

// AppendWaveFrame appends w as a binary waveform frame with sequence seq.
// w's samples must be whole numbers from -32767 to 32767, or NaN for a gap;
// its time must lie between the years 1678 and 2261 (nanoseconds since
// 1970 in an int64).
func AppendWaveFrame(dst []byte, seq int64, w *Waveform) ([]byte, error) {
	code, err := strconv.ParseUint(w.Code, 10, 32)
	switch {
	case seq < 1:
		return dst, fmt.Errorf("frame seq %d: want 1 or more", seq)
	case err != nil || !IsWaveform(w.Code):
		return dst, fmt.Errorf("frame code %q is not a waveform Bedside accepts", w.Code)
	case len(w.Data) == 0 || len(w.Data) > maxSamples:
		return dst, fmt.Errorf("frame of %d samples: want 1 to %d", len(w.Data), maxSamples)
	case len(w.OriginUnit) > maxFrameUnit:
		return dst, fmt.Errorf("frame unit %q is longer than %d bytes", w.OriginUnit, maxFrameUnit)
	case w.Time.Before(minFrameTime) || w.Time.After(maxFrameTime):
		return dst, fmt.Errorf("frame time %s is outside what a frame holds", w.Time.Format(time.RFC3339))
	case !(w.Period > 0) || math.IsInf(w.Period, 0) || w.Factor == 0 || math.IsNaN(w.Factor) || math.IsInf(w.Factor, 0) || math.IsNaN(w.Origin) || math.IsInf(w.Origin, 0):
		return dst, fmt.Errorf("frame period %v, factor %v, origin %v: want a period above 0, a factor other than 0, all finite", w.Period, w.Factor, w.Origin)
	}
	for _, c := range []byte(w.OriginUnit) {
		if c < 0x21 || c > 0x7e {
			return dst, fmt.Errorf("frame unit %q is not printable ASCII without spaces", w.OriginUnit)
		}
	}
	le := binary.LittleEndian
	dst = append(dst, WaveFrameMagic...)
	dst = append(dst, WaveFrameVersion, byte(len(w.OriginUnit)), 0, 0)
	dst = le.AppendUint64(dst, uint64(seq))
	dst = le.AppendUint32(dst, uint32(code))
	dst = le.AppendUint32(dst, uint32(len(w.Data)))
	dst = le.AppendUint64(dst, math.Float64bits(w.Period))
	dst = le.AppendUint64(dst, math.Float64bits(w.Factor))
	dst = le.AppendUint64(dst, math.Float64bits(w.Origin))
	dst = le.AppendUint64(dst, uint64(w.Time.UnixNano()))
	dst = append(dst, w.OriginUnit...)
	for i, v := range w.Data {
		s := int16(WaveFrameGap)
		if !math.IsNaN(v) {
			if v != math.Trunc(v) || v < -math.MaxInt16 || v > math.MaxInt16 || math.IsInf(w.Origin+w.Factor*v, 0) {
				return dst, fmt.Errorf("frame sample %d (%v) is not a whole number from -32767 to 32767 with a finite value", i, v)
			}
			s = int16(v)
		}
		dst = le.AppendUint16(dst, uint16(s))
	}
	return dst, nil
}

// The instants an int64 of nanoseconds since 1970 holds.
var (
	minFrameTime = time.Unix(0, math.MinInt64)
	maxFrameTime = time.Unix(0, math.MaxInt64)
)
