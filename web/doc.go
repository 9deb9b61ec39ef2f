// Package web is Bedside's HTTP surface: pages, sign-in and sessions, the
// call, vitals and device WebSockets, and health endpoints. NewServer builds
// the handler; routes.go lists every URL.
package web
