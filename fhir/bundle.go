package fhir

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
)

// Bundle is a FHIR searchset Bundle: one page of a search's matches.
type Bundle struct {
	ResourceType string        `json:"resourceType"`
	Type         string        `json:"type"`
	Total        int           `json:"total"`
	Link         []BundleLink  `json:"link"`
	Entry        []BundleEntry `json:"entry,omitempty"`
}

// BundleLink is a link from a Bundle to itself or to a neighbouring page.
type BundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// BundleEntry is one match of a search.
type BundleEntry struct {
	FullURL  string      `json:"fullUrl"`
	Resource any         `json:"resource"`
	Search   EntrySearch `json:"search"`
}

// EntrySearch says why an entry is in a searchset.
type EntrySearch struct {
	Mode string `json:"mode"`
}

// entry is a resource found by a search, with its relative reference.
type entry struct {
	ref      string // e.g. "Patient/5"
	resource any
}

// writeBundle answers a search with one page of matches: total in all,
// entries those of q's page, links to this page and the pages either side,
// carrying q's parameters.
func (h *handler) writeBundle(w http.ResponseWriter, r *http.Request, q query, total int, entries []entry) {
	base := h.base(r)
	link := func(rel string, offset int) BundleLink {
		v := url.Values{}
		for k, vs := range q.values {
			v[k] = vs
		}
		v.Set("_count", strconv.Itoa(q.count))
		v.Set("_offset", strconv.Itoa(offset))
		return BundleLink{Relation: rel, URL: base + "/" + q.kind + "?" + v.Encode()}
	}
	b := Bundle{ResourceType: "Bundle", Type: "searchset", Total: total, Link: []BundleLink{link("self", q.offset)}}
	if q.count > 0 && q.offset+q.count < total {
		b.Link = append(b.Link, link("next", q.offset+q.count))
	}
	if q.offset > 0 && q.count > 0 {
		b.Link = append(b.Link, link("previous", max(0, min(q.offset, total)-q.count)))
	}
	for _, e := range entries {
		b.Entry = append(b.Entry, BundleEntry{FullURL: base + "/" + e.ref, Resource: e.resource, Search: EntrySearch{Mode: "match"}})
	}
	h.write(w, r, http.StatusOK, b)
}

// scoped lets a search go on after pageOf reports errScope, logging it:
// the record was dropped, so nothing leaked, but the narrowing is wrong.
func (h *handler) scoped(ctx context.Context, kind string, err error) error {
	if errors.Is(err, errScope) {
		h.Log.ErrorContext(ctx, "fhir search narrowing let through a hidden record", "type", kind)
		return nil
	}
	return err
}
