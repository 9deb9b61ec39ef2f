// Package storetest is the contract every store.Store implementation must
// meet. Each adapter's tests call Run with a function that opens a fresh,
// empty store, so SQLite and PostgreSQL are held to the same behaviour:
// errors, time round-trips, the no-overlap booking rule under concurrency and
// observation de-duplication.
package storetest
