-- Every device reading is of the device's own patient (the device socket
-- and the FHIR API store it so), so a search by device seeks the patient's
-- index (observations_patient) and filters by device: this index, one
-- more page each device's commit wrote every second, is not needed.
DROP INDEX observations_device;
