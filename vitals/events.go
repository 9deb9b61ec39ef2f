package vitals

import (
	"encoding/json"
	"time"
)

// Device connection events on a patient's live stream and timeline.
const (
	DeviceConnected    = "connected"
	DeviceDisconnected = "disconnected"
)

// LiveDevice is the live-vitals message for a device connecting or
// disconnecting.
type LiveDevice struct {
	Type   string    `json:"type"` // "device"
	Event  string    `json:"event"`
	Device string    `json:"device"`
	Time   time.Time `json:"time"`
}

// EncodeDeviceEvent encodes a device event's live message.
func EncodeDeviceEvent(event, device string, at time.Time) []byte {
	b, _ := json.Marshal(LiveDevice{Type: "device", Event: event, Device: device, Time: at.UTC()})
	return b
}
