package localstore

// Period is period, for the test.
var Period = period
