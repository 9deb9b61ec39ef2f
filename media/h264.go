package media

import "strings"

// NAL unit types (RFC 6184, section 5.2, and H.264 table 7-1) the forwarder
// looks for in an H.264 RTP payload.
const (
	naluIDR   = 5  // coded slice of an IDR picture
	naluSPS   = 7  // sequence parameter set
	naluSTAPA = 24 // single-time aggregation packet
	naluFUA   = 28 // fragmentation unit
)

// h264Keyframe reports whether an H.264 RTP payload (RFC 6184,
// packetization mode 1) starts a keyframe, where a subscriber can begin
// decoding: a single NAL unit that is an SPS or an IDR slice, a STAP-A
// that aggregates one, or the first fragment of an FU-A carrying an IDR
// slice. Senders put the SPS and PPS just before an IDR, so a switch at
// the SPS keeps them. It never reads past p and does not allocate.
func h264Keyframe(p []byte) bool {
	if len(p) < 1 || p[0]&0x80 != 0 { // empty, or the forbidden bit is set
		return false
	}
	switch p[0] & 0x1f {
	case naluIDR, naluSPS:
		return true
	case naluSTAPA:
		for i := 1; i+2 < len(p); {
			n := int(p[i])<<8 | int(p[i+1])
			i += 2
			if n == 0 || n > len(p)-i {
				return false
			}
			if t := p[i] & 0x1f; t == naluIDR || t == naluSPS {
				return true
			}
			i += n
		}
	case naluFUA:
		// The FU header: S (start) bit, then the fragmented unit's type.
		return len(p) >= 2 && p[1]&0x80 != 0 && p[1]&0x1f == naluIDR
	}
	return false
}

// AcceptedVideo names the video codecs a publisher may send, for error
// messages.
const AcceptedVideo = "VP8, or H.264 with packetization-mode=1 and profile-level-id 42e0xx (constrained baseline), 4200xx (baseline), 640cxx (constrained high) or 6400xx (high)"

// AcceptsVideo reports whether an SDP video format, given by the encoding
// name and clock rate of its rtpmap ("H264/90000") and its fmtp parameters, is
// one the SFU receives. H.264 must use packetization mode 1 and a profile
// the SFU registered; the level does not matter (as in RFC 6184's offer
// and answer rules).
func AcceptsVideo(encoding, fmtp string) bool {
	name, rest, _ := strings.Cut(encoding, "/")
	if rate, _, _ := strings.Cut(rest, "/"); rate != "90000" {
		return false // video is clocked at 90 kHz (RFC 7741, RFC 6184)
	}
	switch {
	case strings.EqualFold(name, "VP8"):
		return true
	case !strings.EqualFold(name, "H264"):
		return false
	}
	var mode, profile string
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch strings.ToLower(k) {
		case "packetization-mode":
			mode = v
		case "profile-level-id":
			profile = strings.ToLower(v)
		}
	}
	if mode != "1" || len(profile) != 6 {
		return false
	}
	for _, h := range h264Profiles {
		if profile[:4] == h.profileLevelID[:4] {
			return true
		}
	}
	return false
}
