// Package live keeps each patient's live vitals stream for viewers: an
// epoch that changes whenever the stream's history could have been lost,
// a strictly increasing offset per message (from 1, no holes), a history
// bounded in messages and bytes that a reconnecting viewer resumes from,
// and per-viewer bounded queues that the transport flushes as one frame
// per tick. Each message is encoded once per stream, with its patient and
// offset inside the bytes, and every viewer is handed the same bytes.
//
// It knows nothing of HTTP, WebSocket or Redis: web moves the bytes, and
// cluster shares streams between nodes by implementing Feed. Values are
// health data: nothing here logs them.
package live
