// Package account manages people's accounts and the credentials they
// hold: adding users, deactivating and reactivating them, resetting their
// second factor, password links, API tokens and device tokens. The
// command line and the admin pages both go through it, so the rules (roles,
// email, time zones, password policy, what ends on deactivation) and the
// audit events are the same whichever is used.
package account
