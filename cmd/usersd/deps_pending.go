package main

// Modules that the work in progress (e-mail, EventStoreDB, OpenAPI, browser
// tests) builds on, imported here so that go.mod and go.sum hold them while
// that work lands in parallel. Remove a line once real code imports it.
import (
	_ "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	_ "github.com/ThreeDotsLabs/watermill"
	_ "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	_ "github.com/ThreeDotsLabs/watermill/components/forwarder"
	_ "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	_ "github.com/chromedp/chromedp"
	_ "github.com/emersion/go-smtp"
	_ "github.com/getkin/kin-openapi/openapi3filter"
	_ "github.com/getkin/kin-openapi/routers/gorillamux"
	_ "github.com/wneessen/go-mail"
	_ "google.golang.org/grpc"
)
