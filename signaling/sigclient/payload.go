package sigclient

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// NumberedPayload returns the bytes of packet n of a test or load stream:
// n as a big-endian uint32, then a pattern derived from n, so a receiver can
// tell a lost, reordered or altered packet from the bytes alone.
func NumberedPayload(n uint32, size int) []byte {
	b := make([]byte, max(size, 4))
	binary.BigEndian.PutUint32(b, n)
	for i := 4; i < len(b); i++ {
		b[i] = byte(n) ^ byte(i)
	}
	return b
}

// PayloadNumber reads the counter NumberedPayload put in b.
func PayloadNumber(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// VP8 test payloads carry a real VP8 payload descriptor and frame header in
// front of a numbered body, so that an SFU that inspects VP8 (keyframes,
// picture ids, picture sizes) forwards them as it would a camera's.
const (
	vp8DescLen  = 4 // descriptor: X and S bits, a 15-bit picture id
	vp8TagLen   = 3 // frame tag
	vp8KeyExtra = 7 // a keyframe's start code and picture size
)

// VP8LayerSize is the picture size a VP8 test keyframe announces for a
// simulcast layer: q, h and f are quarter, half and full 1280x720.
func VP8LayerSize(layer byte) (w, h int) {
	switch layer {
	case 'q':
		return 320, 180
	case 'h':
		return 640, 360
	}
	return 1280, 720
}

// VP8Payload returns packet n of a VP8 test stream as one whole frame: a
// payload descriptor (picture id n), a frame tag marking a keyframe or not
// (a keyframe also has the start code and VP8LayerSize(layer)), then n as a
// big-endian uint32, the layer byte and a pattern derived from n, size
// bytes in all (or more, for the headers).
func VP8Payload(n uint32, layer byte, keyframe bool, size int) []byte {
	head := vp8DescLen + vp8TagLen
	if keyframe {
		head += vp8KeyExtra
	}
	b := make([]byte, max(size, head+5))
	b[0] = 0x90 // X, S; partition 0
	b[1] = 0x80 // I: picture id follows
	binary.BigEndian.PutUint16(b[2:4], 0x8000|uint16(n)&0x7fff)
	tag := b[vp8DescLen:]
	tag[0], tag[1], tag[2] = 0x11, 0x02, 0x00 // P=1: an inter frame
	if keyframe {
		tag[0] = 0x10
		tag[3], tag[4], tag[5] = 0x9d, 0x01, 0x2a
		w, h := VP8LayerSize(layer)
		binary.LittleEndian.PutUint16(tag[6:8], uint16(w))
		binary.LittleEndian.PutUint16(tag[8:10], uint16(h))
	}
	body := b[head:]
	binary.BigEndian.PutUint32(body, n)
	body[4] = layer
	for i := 5; i < len(body); i++ {
		body[i] = byte(n) ^ byte(i)
	}
	return b
}

// ParseVP8Payload reads what VP8Payload wrote: the counter, the layer byte
// and whether the packet is a keyframe. It fails if the body is not the one
// VP8Payload makes for that counter, so an altered packet is caught.
func ParseVP8Payload(b []byte) (n uint32, layer byte, keyframe bool, err error) {
	if len(b) < vp8DescLen+vp8TagLen+5 || b[0]&0x10 == 0 {
		return 0, 0, false, errors.New("not a VP8 test payload")
	}
	keyframe = b[vp8DescLen]&0x01 == 0
	head := vp8DescLen + vp8TagLen
	if keyframe {
		head += vp8KeyExtra
	}
	if len(b) < head+5 {
		return 0, 0, false, errors.New("VP8 test payload too short")
	}
	body := b[head:]
	n = binary.BigEndian.Uint32(body)
	layer = body[4]
	for i := 5; i < len(body); i++ {
		if body[i] != byte(n)^byte(i) {
			return n, layer, keyframe, fmt.Errorf("VP8 test payload %d altered at byte %d", n, head+i)
		}
	}
	return n, layer, keyframe, nil
}
