package tiered

import "encoding/json"

// Codec turns values into the bytes kept in Redis and back. Implementations
// must be safe for concurrent use. Unmarshal receives a pointer to a zero
// value of the group's type.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default [Codec]: encoding/json.
type JSON struct{}

// Marshal implements [Codec] with json.Marshal.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal implements [Codec] with json.Unmarshal.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
