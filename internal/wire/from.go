package wire

import (
	"bytes"
	"encoding/json"
	"time"
)

// FromKind is where a JetStream subscription starts.
type FromKind uint8

const (
	FromNew   FromKind = iota // what is stored from now on
	FromAll                   // everything stored
	FromLast                  // the last message, then what follows
	FromAfter                 // stream sequences strictly after After
	FromTime                  // messages stored at or after Time
)

// From is a sub's "from": where a JetStream subscription starts.
type From struct {
	Kind  FromKind
	After uint64
	Time  time.Time
}

// ParseFrom decodes a sub's "from": "new", "all", "last", {"after": N} or
// {"time": "<RFC 3339>"}.
func ParseFrom(raw json.RawMessage) (From, *Error) {
	bad := Errf(CodeBadRequest, `from must be "new", "all", "last", {"after": N} or {"time": "<RFC 3339>"}`)
	var word string
	if err := json.Unmarshal(raw, &word); err == nil {
		switch word {
		case "new":
			return From{Kind: FromNew}, nil
		case "all":
			return From{Kind: FromAll}, nil
		case "last":
			return From{Kind: FromLast}, nil
		}
		return From{}, bad
	}
	var obj struct {
		After *uint64 `json:"after"`
		Time  *string `json:"time"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&obj); err != nil || dec.More() {
		return From{}, bad
	}
	switch {
	case obj.After != nil && obj.Time == nil:
		return From{Kind: FromAfter, After: *obj.After}, nil
	case obj.Time != nil && obj.After == nil:
		t, err := time.Parse(time.RFC3339, *obj.Time)
		if err != nil {
			return From{}, Errf(CodeBadRequest, "from.time must be an RFC 3339 timestamp")
		}
		return From{Kind: FromTime, Time: t}, nil
	}
	return From{}, bad
}
