package envelope

// DecodeFast and DecodeLong are DecodeInput's two ways, for the test that
// holds them to the same value (bindequiv_test.go).
func (s *Schema) DecodeFast(body []byte, v any) bool  { return s.decodeFast(body, v) }
func (s *Schema) DecodeLong(body []byte, v any) error { return s.decodeLong(body, v) }
