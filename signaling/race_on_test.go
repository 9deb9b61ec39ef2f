//go:build race

package signaling_test

// raceEnabled reports a race-detector build, whose Pion peers, virtual
// network and SRTP run several times slower: network tests then send
// fewer packets a second, so that what they measure is the network they
// shape and not a processor that cannot keep up.
const raceEnabled = true
