// Package templates renders Bedside's pages as templ components from view
// models that hold only what they display.
package templates
