package localstore

// Period is period, for the test.
var Period = period

// ManyKeys is manyKeys, for the test.
var ManyKeys = manyKeys
