package redistest

// MissingAction exposes missingAction to the tests.
var MissingAction = missingAction
