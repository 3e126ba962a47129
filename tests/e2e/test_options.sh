#!/usr/bin/env bash
# OPTIONS to the server (RFC 3261 §11.2): 200 with Allow, Accept and
# Supported, over UDP and TCP.
source "$(dirname "$0")/lib.sh"

server_start --auth off

step "OPTIONS (sipp)"
sipp_run options

step "Allow lists REGISTER and OPTIONS (sipclient); the 200 has a To tag"
sipc request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200 \
	--expect-header '^Allow:.*REGISTER' --expect-header '^Allow:.*OPTIONS' \
	--expect-header '^Accept:' --expect-header '^Supported:' \
	--expect-header '^To:.*;[[:space:]]*tag='

step "OPTIONS over TCP (sipclient)"
sipc --tcp request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200 --expect-header '^Allow:'

step "OPTIONS bursts: 200 calls at 100/s (sipp)"
sipp_run options -m 200 -r 100 -l 50

server_stop
