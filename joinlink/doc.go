// Package joinlink issues patients' join links: single-visit bearer
// credentials, stored only as their hash, that Bedside can write out again
// (in an invite or a reminder) because each is derived from a server key.
package joinlink
