package notify

import (
	"fmt"
	"strings"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// composed is the wording of one message. None of it says why the patient
// is seen: invites and reminders carry no health information.
type composed struct {
	subject     string
	text        string
	summary     string // the calendar event's title
	description string // the calendar event's text
}

// when writes an instant in the patient's zone with the zone named.
func when(t time.Time, zone string) string {
	loc, err := time.LoadLocation(zone)
	if err != nil || zone == "" {
		loc, zone = time.UTC, "UTC"
	}
	return t.In(loc).Format("Monday 2 January 2006, 15:04") + " (" + zone + ")"
}

func compose(kind string, a scheduling.Appointment, patient, physician store.User, link string, now time.Time) composed {
	at := when(a.Start, patient.TimeZone)
	length := a.End.Sub(a.Start).Round(time.Minute)
	c := composed{summary: "Video visit with " + physician.Name}
	c.description = "Join the video visit at " + link + " from any modern browser; no installation is needed."
	var b strings.Builder
	fmt.Fprintf(&b, "Dear %s,\n\n", patient.Name)
	switch kind {
	case KindInvite:
		c.subject = "Your video visit with " + physician.Name + " on " + at
		fmt.Fprintf(&b, "Your video visit with %s is booked for %s and lasts %s.\n\n", physician.Name, at, minutes(length))
	case KindUpdate:
		c.subject = "Your video visit with " + physician.Name + " has moved to " + at
		fmt.Fprintf(&b, "Your video visit with %s has moved. It is now on %s and lasts %s.\n", physician.Name, at, minutes(length))
		b.WriteString("The link sent before no longer works; please use the one below.\n\n")
	case KindCancel:
		c.subject = "Cancelled: your video visit with " + physician.Name + " on " + at
		c.description = "This visit was cancelled."
		fmt.Fprintf(&b, "Your video visit with %s on %s was cancelled.\n", physician.Name, at)
		b.WriteString("Please contact the clinic if you would like to book another time.\n")
	case KindReminder:
		c.subject = "Reminder: your video visit with " + physician.Name + " on " + at
		fmt.Fprintf(&b, "This is a reminder of your video visit with %s on %s (in %s).\n\n", physician.Name, at, until(a.Start.Sub(now)))
	}
	if link != "" {
		fmt.Fprintf(&b, "Join from any modern browser, a few minutes early to check your camera and microphone:\n%s\n\n", link)
		b.WriteString("This link is personal: please do not share it.\n")
	}
	b.WriteString("\nThis message was sent by your clinic's Bedside service.\n")
	c.text = b.String()
	return c
}

func minutes(d time.Duration) string { return fmt.Sprintf("%d minutes", int(d/time.Minute)) }

// until writes a wait roughly, as people say it.
func until(d time.Duration) string {
	switch {
	case d >= 2*time.Hour:
		return fmt.Sprintf("about %d hours", int((d+30*time.Minute)/time.Hour))
	case d >= 50*time.Minute:
		return "about an hour"
	default:
		return fmt.Sprintf("%d minutes", int(d.Round(time.Minute)/time.Minute))
	}
}
