package news2

// Response is the RCP's recommended clinical response to a score (NEWS2
// chart 3 and chart 4), in words. The wording is the chart's, written for
// ward care; a clinic maps "registered nurse" and "medical team" to its own
// escalation path.
type Response struct {
	Risk       string `json:"risk"`       // the clinical risk: "Low", "Low-medium", "Medium", "High"
	Trigger    string `json:"trigger"`    // what the score is: "Aggregate score 1-4"
	Urgency    string `json:"urgency"`    // "Ward-based response" ... "Urgent or emergency response"
	Action     string `json:"action"`     // what to do
	Monitoring string `json:"monitoring"` // minimum frequency of observations
}

var (
	responseZero = Response{
		Risk: "Low", Trigger: "Aggregate score 0", Urgency: "Ward-based response",
		Action:     "Continue routine NEWS monitoring.",
		Monitoring: "Minimum 12-hourly",
	}
	responseLow = Response{
		Risk: "Low", Trigger: "Aggregate score 1-4", Urgency: "Ward-based response",
		Action:     "Inform a registered nurse, who must assess the patient and decide whether increased frequency of clinical monitoring or an escalation of clinical care is required.",
		Monitoring: "Minimum 4-6-hourly",
	}
	responseRed = Response{
		Risk: "Low-medium", Trigger: "Red score: 3 in a single parameter", Urgency: "Urgent ward-based response",
		Action:     "Registered nurse to inform the medical team caring for the patient, who will review and decide whether escalation of care is necessary.",
		Monitoring: "Minimum 1-hourly",
	}
	responseMedium = Response{
		Risk: "Medium", Trigger: "Aggregate score 5-6", Urgency: "Key threshold for urgent response",
		Action: "Registered nurse to immediately inform the medical team caring for the patient and request urgent assessment by a clinician or team with core competencies in the care of acutely ill patients. " +
			"Provide clinical care in an environment with monitoring facilities.",
		Monitoring: "Minimum 1-hourly",
	}
	responseHigh = Response{
		Risk: "High", Trigger: "Aggregate score 7 or more", Urgency: "Urgent or emergency response",
		Action: "Registered nurse to immediately inform the medical team caring for the patient, at least at specialist registrar level. " +
			"Emergency assessment by a team with critical-care competencies, including practitioners with advanced airway management skills. " +
			"Consider transfer of care to a level 2 or 3 clinical care facility (higher-dependency unit or ICU). " +
			"Clinical care in an environment with monitoring facilities.",
		Monitoring: "Continuous monitoring of vital signs",
	}
)

// Response is the recommended clinical response to the score. A score of
// 0 and one of 1-4 share the low band but not the monitoring frequency.
func (s Score) Response() Response {
	switch s.Band {
	case High:
		return responseHigh
	case Medium:
		return responseMedium
	case LowMedium:
		return responseRed
	}
	if s.Total == 0 {
		return responseZero
	}
	return responseLow
}
