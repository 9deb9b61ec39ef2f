package signaling

import (
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
)

// Message types, as in docs/protocol.md.
const (
	TypeWelcome         = "welcome"
	TypeLobby           = "lobby"
	TypeAdmitted        = "admitted"
	TypeAdmit           = "admit"
	TypePublishOffer    = "publish-offer"
	TypePublishAnswer   = "publish-answer"
	TypeSubscribeOffer  = "subscribe-offer"
	TypeSubscribeAnswer = "subscribe-answer"
	TypeCandidate       = "candidate"
	TypePeerLeft        = "peer-left"
	TypeLeave           = "leave"
	TypeError           = "error"
)

// Participant states in a welcome.
const (
	StateWaiting  = "waiting"
	StateAdmitted = "admitted"
)

// Roles of call participants.
const (
	RolePhysician = "physician"
	RolePatient   = "patient"
)

// Message is every signaling message; each type uses some of the fields.
type Message struct {
	Type        string                   `json:"type"`
	Participant string                   `json:"participant,omitempty"`
	Role        string                   `json:"role,omitempty"`
	State       string                   `json:"state,omitempty"`
	SDP         string                   `json:"sdp,omitempty"`
	Target      string                   `json:"target,omitempty"`
	Candidate   *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Tracks      []media.TrackInfo        `json:"tracks,omitempty"`
	Waiting     *[]Waiting               `json:"waiting,omitempty"`
	ICEServers  []webrtc.ICEServer       `json:"iceServers,omitempty"`
	Error       string                   `json:"error,omitempty"`
}

// Waiting is one person in the waiting room.
type Waiting struct {
	Participant string `json:"participant"`
	Name        string `json:"name"`
}
