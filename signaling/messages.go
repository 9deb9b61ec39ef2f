package signaling

import (
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
)

// Message types, as in docs/protocol.md.
const (
	TypeWelcome         = "welcome"          // server: first message
	TypeLobby           = "lobby"            // server, to physicians: who waits
	TypeAdmitted        = "admitted"         // server: the client may publish
	TypeAdmit           = "admit"            // client, physician: admit a participant
	TypePublishOffer    = "publish-offer"    // client: offer for the publish connection
	TypePublishAnswer   = "publish-answer"   // server: its answer
	TypeSubscribeOffer  = "subscribe-offer"  // server: offer for the subscribe connection
	TypeSubscribeAnswer = "subscribe-answer" // client: its answer
	TypeCandidate       = "candidate"        // both: a trickled ICE candidate
	TypePeerLeft        = "peer-left"        // server: a participant left the call
	TypeLeave           = "leave"            // client: leave the call
	TypeTile            = "tile"             // client: the size a received video is drawn at
	TypeError           = "error"            // server: a request was refused
	TypeResumed         = "resumed"          // server: a resume succeeded; missed messages follow
	TypeResumeFailed    = "resume-failed"    // server: a resume was refused; a new join follows
	TypeICERestart      = "ice-restart"      // client: restart ICE on the subscribe connection
	TypeQuality         = "quality"          // server: every participant's network quality, periodically
	TypeSpeaker         = "speaker"          // server: the dominant speaker changed
	TypeViewers         = "viewers"          // server: who watches the call by WHEP
)

// Participant states in a welcome.
const (
	StateWaiting  = "waiting"
	StateAdmitted = "admitted"
)

// Roles of call participants. The visit's physician admits the others;
// everyone else waits to be admitted. Guests come by a guest link.
const (
	RolePhysician      = "physician"
	RolePatient        = "patient"
	RoleInterpreter    = "interpreter"     // a guest
	RoleFamily         = "family"          // a guest
	RoleGuestPhysician = "guest-physician" // a second physician, as a guest
)

// ValidRole reports whether role is one of the participant roles.
func ValidRole(role string) bool {
	switch role {
	case RolePhysician, RolePatient, RoleInterpreter, RoleFamily, RoleGuestPhysician:
		return true
	}
	return false
}

// Candidate targets: the connection a candidate belongs to.
const (
	TargetPublish   = media.TargetPublish
	TargetSubscribe = media.TargetSubscribe
)

// Message is every signaling message, in either direction; each type uses
// some of the fields (see docs/protocol.md).
type Message struct {
	Type string `json:"type"`
	// Seq numbers the messages of one participant's session in each
	// direction, from 1: on every server message but resumed and
	// resume-failed, and optionally on client messages, which the server
	// then handles once each.
	Seq         uint64 `json:"seq,omitempty"`
	Resume      string `json:"resume,omitempty"`      // welcome, resumed: the resume token
	Last        uint64 `json:"last,omitempty"`        // resumed: the last client seq the server handled
	Participant string `json:"participant,omitempty"` // welcome, admit, peer-left, speaker
	Role        string `json:"role,omitempty"`        // welcome
	State       string `json:"state,omitempty"`       // welcome
	SDP         string `json:"sdp,omitempty"`         // offers and answers
	// Screen is a publish-offer's mid of the transceiver that carries the
	// participant's screen share, if any; its track is offered to the
	// others with source "screen".
	Screen string `json:"screen,omitempty"`
	Target string `json:"target,omitempty"` // candidate
	// Candidate is a trickled candidate; nil (JSON null) from a client
	// ends its gathering.
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	// Tracks lists a subscribe-offer's tracks; it is sent (possibly empty)
	// with every subscribe-offer.
	Tracks []media.TrackInfo `json:"tracks,omitzero"`
	// Waiting lists the lobby; it is sent (possibly empty) with every lobby
	// message.
	Waiting *[]Waiting `json:"waiting,omitempty"`
	// Viewers lists who watches the call by WHEP; it is sent (possibly
	// empty) with every viewers message.
	Viewers    *[]Viewer          `json:"viewers,omitempty"`
	ICEServers []webrtc.ICEServer `json:"iceServers,omitzero"` // welcome
	Error      string             `json:"error,omitempty"`     // error
	// Track, Width and Height are a tile message: a received video track's
	// id and the size it is drawn at in device pixels (0 by 0: not shown).
	Track  string `json:"track,omitempty"`
	Width  *int   `json:"width,omitempty"`
	Height *int   `json:"height,omitempty"`
	// Quality lists the network quality of everyone in the call, the
	// recipient included, by participant id (quality).
	Quality []media.Quality `json:"quality,omitzero"`
}

// Viewer is one WHEP viewer of the call: its participant id and a label
// naming whose token opened it ("Viewer (Dr Ada Obi)").
type Viewer struct {
	Participant string `json:"participant"`
	Name        string `json:"name"`
}

// Waiting is one person in the waiting room.
type Waiting struct {
	Participant string `json:"participant"`
	Name        string `json:"name"`
	Role        string `json:"role,omitempty"`
}
