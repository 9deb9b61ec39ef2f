package media

import "encoding/binary"

// vp8Info is what the forwarder reads from a VP8 RTP payload (RFC 7741):
// whether the packet starts a keyframe, where the picture id and TL0PICIDX
// sit (so they can be rewritten when a subscriber switches layers), and a
// keyframe's picture size.
type vp8Info struct {
	keyframe bool
	// picIDOff is the offset of the picture id in the payload, or -1;
	// picIDLen is 1 (7 bits) or 2 (15 bits).
	picIDOff, picIDLen int
	picID              uint16
	// tl0Off is the offset of TL0PICIDX, or -1.
	tl0Off int
	tl0    uint8
	// width and height are a keyframe's picture size, 0 otherwise.
	width, height uint16
}

// parseVP8 reads the VP8 payload descriptor of p. It reports false when p is
// too short for the descriptor it announces, or carries no VP8 data.
func parseVP8(p []byte) (vp8Info, bool) {
	info := vp8Info{picIDOff: -1, tl0Off: -1}
	if len(p) < 1 {
		return info, false
	}
	b0 := p[0]
	start := b0&0x10 != 0 && b0&0x07 == 0 // S bit, partition 0
	i := 1
	if b0&0x80 != 0 { // X: extension byte follows
		if len(p) < 2 {
			return info, false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture id
			if len(p) <= i {
				return info, false
			}
			if p[i]&0x80 != 0 { // M: 15-bit picture id
				if len(p) <= i+1 {
					return info, false
				}
				info.picIDOff, info.picIDLen = i, 2
				info.picID = uint16(p[i]&0x7f)<<8 | uint16(p[i+1])
				i += 2
			} else {
				info.picIDOff, info.picIDLen = i, 1
				info.picID = uint16(p[i] & 0x7f)
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			if len(p) <= i {
				return info, false
			}
			info.tl0Off, info.tl0 = i, p[i]
			i++
		}
		if x&0x30 != 0 { // T or K: TID/Y/KEYIDX byte
			i++
		}
	}
	if len(p) <= i {
		return info, false
	}
	if start && p[i]&0x01 == 0 { // the frame tag's P bit is 0 on keyframes
		info.keyframe = true
		// Frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height.
		if h := p[i:]; len(h) >= 10 && h[3] == 0x9d && h[4] == 0x01 && h[5] == 0x2a {
			info.width = binary.LittleEndian.Uint16(h[6:8]) & 0x3fff
			info.height = binary.LittleEndian.Uint16(h[8:10]) & 0x3fff
		}
	}
	return info, true
}

// rewrite writes a new picture id and TL0PICIDX into p, a copy of the
// payload info was parsed from, keeping the picture id's length.
func (info *vp8Info) rewrite(p []byte, picID uint16, tl0 uint8) {
	switch info.picIDLen {
	case 2:
		p[info.picIDOff] = 0x80 | byte(picID>>8)&0x7f
		p[info.picIDOff+1] = byte(picID)
	case 1:
		p[info.picIDOff] = byte(picID) & 0x7f
	}
	if info.tl0Off >= 0 {
		p[info.tl0Off] = tl0
	}
}

// picMask is the range of a picture id of info's length.
func (info *vp8Info) picMask() uint16 {
	if info.picIDLen == 1 {
		return 0x7f
	}
	return 0x7fff
}
