// Package audit keeps the trail of every access to patient data: who did
// what to whose record, when, from where, and how it ended.
//
// Events are appended to the store (store.Audit) as a hash chain: each
// event's Hash is SHA-256 over its fields and the previous event's Hash
// (see Hash), so changing, removing or inserting a stored row breaks the
// chain, and Verify and VerifyStore say where. The stores also refuse
// UPDATE and DELETE of audit rows by trigger.
//
// Handlers record through a Recorder. An event holds identifiers only
// (user and patient IDs, resource references such as "Appointment/12"),
// never vital values, notes, names or search text.
//
// The chain shows tampering with rows inside it. It cannot show that the
// newest events were cut off the end, nor a chain rewritten wholesale by
// someone who can write the database: for that, copy the head (the last
// Seq and Hash) somewhere the database's writers cannot change.
package audit
