// Package static embeds the browser assets: ES modules, CSS and vendored
// libraries, served under /static/.
package static

import "embed"

// Files holds every asset below this folder.
//
//go:embed *.css *.js *.svg vendor
var Files embed.FS
