// Package news2 computes the National Early Warning Score 2 (Royal College
// of Physicians, 2017) from the seven physiological parameters of its
// chart: respiration rate, SpO2 (scale 1, or scale 2 by clinician choice),
// air or oxygen, systolic blood pressure, pulse, consciousness (ACVPU) and
// temperature. It scores each parameter, adds them up (0 to 20), names the
// clinical risk band with the RCP's recommended response and monitoring
// frequency, and says whether the score is complete: every input present
// and fresh. It does no I/O and knows nothing of devices; callers say where
// each input came from (measured, entered, stale or missing).
//
// Rounding. The chart bands whole numbers for respiration rate, SpO2,
// systolic pressure and pulse, and temperature to one decimal. A value
// that falls between two of the chart's numbers (a device averaging to
// 20.6 breaths a minute, 35.04 °C from a Fahrenheit conversion) is first
// rounded to the chart's precision, half away from zero, as a person
// reading the display would chart it: 20.5 breaths is 21 (scores 2), 91.5 %
// is 92, 35.05 °C is 35.1 (scores 1) and 35.04 °C is 35.0 (scores 3).
package news2
