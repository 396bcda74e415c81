#!/usr/bin/env node
// A test RPS for amt-agent. It speaks RPS 2.40.0's websocket protocol (4.0.0) as
// the RPS protocol reference (rps-protocol.md) and the recorded traces show: the envelopes, the raw HTTP
// inside `wsman` (header order Authorization/Host/Transfer-Encoding/Connection, one chunk with an
// upper-case hex size), the 401-first Digest with one nonce for the whole session and an
// incrementing nc, the WS-MAN flows, the pause after Setup/AdminSetup, and the exact final
// messages. WS-MAN is built with Intel's wsman-messages and answers are parsed with xml2js, as
// RPS does, so the peer shares no WS-MAN code with amt-agent.
//
// TLS-tunnel mode (protocol 4.0.0; rpc-go.md §3.7, rps-protocol.md §5.6): when the first
// message's payload says `tlsEnforced`, or after a `port_switch`, the peer runs a Node TLS client
// over a Duplex whose writes become `tls_data` messages and into which the client's `tls_data`
// payloads are pushed. The HTTP inside is the same WS-MAN, to `<uuid>:16993`, on a persistent
// connection (no `Connection: close`); AMT's chain is checked against `config.tunnel.ca` as RPS
// checks it against Intel's ODCA roots. A `connection_reset` drops the tunnel; the next request
// waits `config.tunnel.resetDelayMs` (RPS's delay_tls_timer) and re-handshakes.
//
// TLS profiles (rps-protocol.md §5.6, RPS's src/stateMachines/tls.ts): when a profile has `tls`
// and the client asked for the tunnel (`tlsTunnel`, AMT 11–18) or AMT enforces TLS (19+), the
// peer runs RPS's TLS flow after the network and features: PublicKeyCertificate E+P,
// AddTrustedRootCertificate (the profile's root), GenerateKeyPair, PublicPrivateKeyPair E+P, a
// certificate for AMT's key made with node-forge and signed by the root's key (as RPS's
// CertManager does), AddCertificate, TLSCredentialContext Create, time sync, TLSSettingData E+P,
// Put 802.3, a pause, Put LMS, CommitChanges. On AMT 11–18 it then sends `port_switch` and
// reads AMT once more through the tunnel, checking that AMT now presents that certificate.
//
// Usage: node peer.js --config FILE [--listen 127.0.0.1:0] [--tls-cert PEM --tls-key PEM]
//                     [--log FILE] [--once]
// Prints `listening PORT` on stdout once it accepts connections.
'use strict'

const fs = require('fs')
const crypto = require('crypto')
const http = require('http')
const https = require('https')
const tls = require('tls')
const { Duplex } = require('stream')
const { WebSocketServer } = require('ws')
const xml2js = require('xml2js')
const { AMT, IPS, CIM } = require('@device-management-toolkit/wsman-messages')
const forge = require('node-forge')

const RPS_APP_VERSION = '2.40.0'
const MAX_PAYLOAD = 102400

function arg (name, dflt) {
  const i = process.argv.indexOf('--' + name)
  if (i < 0) return dflt
  const v = process.argv[i + 1]
  return v === undefined || v.startsWith('--') ? true : v
}

const config = JSON.parse(fs.readFileSync(arg('config'), 'utf8'))
const delayMs = config.delayMs ?? 1000
// RPS's own protocol version (configurable to test its VersionChecker's refusal).
const RPS_PROTOCOL = config.rpsProtocol || '4.0.0'
// TLS tunnel settings: ca (PEM file: the root AMT's chain must reach), resetDelayMs (RPS's
// delay_tls_timer, 15 s), attempts (wsman_max_attempts, 3), responseTimeoutMs.
const tunnelConfig = Object.assign({ resetDelayMs: 15000, attempts: 3 }, config.tunnel || {})
const logFile = arg('log')
const once = arg('once', false) === true
// RPS's secret store: uuid -> AMT password, filled at activation (and by config for tests).
const stored = Object.assign({}, config.storedPasswords || {})

function log (entry) {
  if (logFile) fs.appendFileSync(logFile, JSON.stringify(entry) + '\n')
}

// ---------------------------------------------------------------------------------------------
// Envelopes and final messages (rps-protocol.md §1.3, §7)

function envelope (method, status, message, payload) {
  return JSON.stringify({ method, apiKey: 'xxxxx', appVersion: RPS_APP_VERSION, protocolVersion: RPS_PROTOCOL, status, message, payload, tenantId: '' })
}

const NA = {
  WiredNetwork: { Result: 'NotApplicable', Details: 'Wired network not part of this configuration' },
  WirelessNetwork: { Result: 'NotApplicable', Details: 'Wireless network not part of this configuration' },
  TLS: { Result: 'NotApplicable', Details: 'TLS not part of this configuration' },
  CIRAProxy: { Result: 'NotApplicable', Details: 'CIRA proxy not part of this configuration' },
  CIRAConnection: { Result: 'NotApplicable', Details: 'CIRA connection not part of this configuration' }
}

// `cira`: the CIRA flow's status message ('Configured' or the failing state's), when the profile
// has CIRA. RPS records it as the flat CIRAConnection and as the component (Details normalized).
function successComponents (activation, cira) {
  return {
    Activation: activation,
    WiredNetwork: { Result: 'Success', Details: 'Wired Network Configured' },
    WirelessNetwork: { Result: 'NotApplicable', Details: 'Wireless network not part of this configuration' },
    TLS: NA.TLS,
    CIRAProxy: NA.CIRAProxy,
    CIRAConnection: cira === undefined ? NA.CIRAConnection : { Result: cira === 'Configured' ? 'Success' : 'Failure', Details: cira }
  }
}

// Fresh activations: Status, Components (Activation first), Network[, CIRAConnection].
function activationSuccess (status, mode, details, cira) {
  const m = { Status: status, Components: successComponents({ Result: 'Success', Mode: mode, Details: details }, cira), Network: 'Wired Network Configured' }
  if (cira !== undefined) m.CIRAConnection = cira
  return JSON.stringify(m)
}

// Re-activations: Status, Network, Components with WiredNetwork first (trace 02, 11).
function reactivationSuccess (status, mode, details, cira) {
  const c = successComponents({ Result: 'Success', Mode: mode, Details: details }, cira)
  const m = {
    Status: status,
    Network: 'Wired Network Configured',
    Components: { WiredNetwork: c.WiredNetwork, WirelessNetwork: c.WirelessNetwork, TLS: c.TLS, CIRAProxy: c.CIRAProxy, CIRAConnection: c.CIRAConnection, Activation: c.Activation }
  }
  if (cira !== undefined) m.CIRAConnection = cira
  return JSON.stringify(m)
}

function flowError (status) {
  return JSON.stringify({ Status: status, Components: Object.assign({ Activation: { Result: 'Failure', Details: status } }, NA) })
}

class FlowError extends Error {
  constructor (message, json = true) { super(message); this.json = json }
}

// The CIRA flow stopped in a state: RPS records the state's message and still ends in `success`.
class CiraFailure extends Error {}

// RPS's PasswordHelper: 16 characters from A–Z a–z 0–9 !@#$%^*(), with one of each kind.
function randomMpsPassword () {
  const sets = ['ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz', '0123456789', '!@#$%^*()']
  const all = sets.join('')
  const pick = (set) => set[crypto.randomInt(set.length)]
  const chars = sets.map(pick)
  while (chars.length < 16) chars.push(pick(all))
  for (let i = chars.length - 1; i > 0; i--) { const j = crypto.randomInt(i + 1); [chars[i], chars[j]] = [chars[j], chars[i]] }
  return chars.join('')
}

// ---------------------------------------------------------------------------------------------
// Digest and raw HTTP, framed exactly as RPS frames them (rps-protocol.md §2, §3)

const md5 = (s) => crypto.createHash('md5').update(s).digest('hex')
const md5raw = (s) => crypto.createHash('md5').update(s).digest()

function cnonce () {
  const n = 5 + crypto.randomInt(3)
  let s = ''
  while (s.length < n) s += crypto.randomBytes(1)[0].toString(36).slice(-1)
  return s
}

function parseChallenge (h) {
  const out = {}
  const re = /(\w+)=("([^"]*)"|[^,\s]*)/g
  let m
  while ((m = re.exec(h)) !== null) out[m[1]] = m[3] !== undefined ? m[3] : m[2]
  return out
}

function splitHttp (buf) {
  const i = buf.indexOf('\r\n\r\n')
  if (i < 0) throw new Error('no end of headers')
  const head = buf.slice(0, i).toString('latin1').split('\r\n')
  const status = parseInt(head[0].split(' ')[1], 10)
  const headers = {}
  for (const l of head.slice(1)) {
    const c = l.indexOf(':')
    headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim()
  }
  return { status, headers, body: buf.slice(i + 4) }
}

// RPS de-chunks every 200 body unconditionally; a Content-Length body fails to parse (trace 15).
function dechunk (body) {
  const parts = []
  let pos = 0
  for (;;) {
    const e = body.indexOf('\r\n', pos)
    if (e < 0) throw new Error('bad chunk framing')
    const size = parseInt(body.slice(pos, e).toString('latin1').split(';')[0], 16)
    if (Number.isNaN(size)) throw new Error('bad chunk size')
    if (size === 0) return Buffer.concat(parts)
    parts.push(body.slice(e + 2, e + 2 + size))
    pos = e + 2 + size + 2
  }
}

const stripPrefix = xml2js.processors.stripPrefix
async function parseXml (xml) {
  const p = new xml2js.Parser({ ignoreAttrs: true, mergeAttrs: false, explicitArray: false, tagNameProcessors: [stripPrefix], valueProcessors: [xml2js.processors.parseNumbers, xml2js.processors.parseBooleans] })
  return p.parseStringPromise(xml)
}

// ---------------------------------------------------------------------------------------------
// The TLS tunnel (TLSTunnelManager's role in RPS)

// Why a tunnelled exchange did not get its answer: 'reset' (the client sent connection_reset),
// 'closed' (the TLS session ended first), 'handshake' (TLS failed or AMT's certificate was refused),
// 'timeout'. RPS retries all of them after delay_tls_timer.
class TunnelFailure extends Error {
  constructor (message, kind) { super(message); this.kind = kind }
}

// The length of the first complete HTTP response in buf, or null while it is incomplete.
function httpResponseLength (buf) {
  const h = buf.indexOf('\r\n\r\n')
  if (h < 0) return null
  const head = buf.slice(0, h).toString('latin1')
  const start = h + 4
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    let pos = start
    for (;;) {
      const e = buf.indexOf('\r\n', pos)
      if (e < 0) return null
      const size = parseInt(buf.slice(pos, e).toString('latin1').split(';')[0], 16)
      if (Number.isNaN(size)) return buf.length
      if (size === 0) {
        const t = buf.indexOf('\r\n\r\n', e)
        if (buf.slice(e + 2, e + 4).toString('latin1') === '\r\n') return e + 4
        return t < 0 ? null : t + 4
      }
      pos = e + 2 + size + 2
      if (pos > buf.length) return null
    }
  }
  const m = head.match(/\r\ncontent-length:\s*(\d+)/i)
  const len = m ? parseInt(m[1], 10) : 0
  return buf.length >= start + len ? start + len : null
}

function wantsClose (raw) {
  const h = raw.indexOf('\r\n\r\n')
  return /\r\nconnection:\s*close/i.test(raw.slice(0, h < 0 ? raw.length : h).toString('latin1'))
}

// The chain AMT presented, leaf first, as X509Certificate objects.
function presentedChain (sock) {
  const chain = []
  const seen = new Set()
  let c = sock.getPeerCertificate(true)
  while (c && c.raw) {
    const x = new crypto.X509Certificate(c.raw)
    if (seen.has(x.fingerprint256)) break
    seen.add(x.fingerprint256)
    chain.push(x)
    if (c.issuerCertificate === c) break
    c = c.issuerCertificate
  }
  return chain
}

// As RPS checks AMT's chain against Intel's ODCA roots (TLSTunnelManager): each certificate
// valid now and signed by the next, the top one the root or signed by it. No EKU or name check.
function verifyChain (chain, rootPem) {
  if (chain.length === 0) return { ok: false, reason: 'no certificate from AMT' }
  const now = Date.now()
  for (let i = 0; i < chain.length; i++) {
    if (now < Date.parse(chain[i].validFrom) || now > Date.parse(chain[i].validTo)) return { ok: false, reason: `chain[${i}] is not valid now` }
    if (i + 1 < chain.length && !chain[i].verify(chain[i + 1].publicKey)) return { ok: false, reason: `chain[${i}] is not signed by chain[${i + 1}]` }
  }
  const root = new crypto.X509Certificate(rootPem)
  const top = chain[chain.length - 1]
  if (top.fingerprint256 === root.fingerprint256) return { ok: true, reason: `chain of ${chain.length} ends at the trusted root` }
  if (top.verify(root.publicKey)) return { ok: true, reason: `chain of ${chain.length} is signed by the trusted root` }
  return { ok: false, reason: `chain does not reach the trusted root (top: ${top.subject.replace(/\n/g, ', ')})` }
}

class Tunnel {
  constructor (session, id, opts) {
    this.session = session
    this.id = id
    this.opts = opts
    this.dead = false
    this.connected = false
    this.buf = Buffer.alloc(0)
    this.waiter = null
    this.onConnectFail = null
    // Writes of the TLS client go to the agent as tls_data, one message per write.
    this.duplex = new Duplex({
      read () {},
      write: (chunk, _enc, cb) => { if (!this.dead) session.sendTls(chunk, id); cb() }
    })
  }

  connect () {
    return new Promise((resolve, reject) => {
      const o = { socket: this.duplex, rejectUnauthorized: false, minVersion: 'TLSv1.2', ca: this.opts.ca }
      if (this.opts.cert) { o.cert = this.opts.cert; o.key = this.opts.key }
      this.onConnectFail = (e) => { this.onConnectFail = null; reject(e) }
      const sock = tls.connect(o)
      this.sock = sock
      sock.once('secureConnect', () => {
        const v = this.opts.verify(sock)
        if (!v.ok) return this.kill(new TunnelFailure(`AMT's TLS certificate was not accepted: ${v.reason}`, 'handshake'))
        this.connected = true
        this.onConnectFail = null
        resolve(v.reason)
      })
      sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.complete() })
      sock.on('error', (e) => this.end(new TunnelFailure(`TLS: ${e.message}`, this.connected ? 'closed' : 'handshake')))
      // AMT ended the session (close_notify): this side goes too, without a close_notify of its
      // own, which would reach AMT after the next session's ClientHello.
      sock.on('end', () => this.kill(new TunnelFailure('AMT closed the TLS session', 'closed')))
      sock.on('close', () => this.end(new TunnelFailure('the TLS session closed', this.connected ? 'closed' : 'handshake')))
    })
  }

  inject (data) {
    if (this.dead) return
    // As RPS's TLSTunnelManager: application data before the handshake is done belongs to the
    // previous session (AMT's close_notify that followed its 401 arrives after RPS moved on).
    if (!this.connected && data.length >= 5 && data[0] === 0x17) {
      log({ event: 'stale application data before the handshake: dropped', tunnel: this.id, bytes: data.length })
      return
    }
    this.duplex.push(data)
  }

  request (raw, timeoutMs) {
    if (this.dead) return Promise.reject(new TunnelFailure('the TLS session is closed', 'closed'))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.waiter = null; reject(new TunnelFailure(`no answer from AMT within ${timeoutMs} ms`, 'timeout')) }, timeoutMs)
      this.waiter = { resolve: (r) => { clearTimeout(timer); resolve(r) }, reject: (e) => { clearTimeout(timer); reject(e) } }
      this.sock.write(raw)
      this.complete()
    })
  }

  complete () {
    if (!this.waiter) return
    const n = httpResponseLength(this.buf)
    if (n === null) return
    const r = this.buf.slice(0, n)
    this.buf = this.buf.slice(n)
    const w = this.waiter
    this.waiter = null
    w.resolve(r)
  }

  end (err) {
    if (this.dead) return
    this.dead = true
    if (this.onConnectFail) this.onConnectFail(err)
    if (this.waiter) { const w = this.waiter; this.waiter = null; w.reject(err) }
  }

  kill (err) {
    this.end(err || new TunnelFailure('tunnel closed', 'closed'))
    if (this.sock) this.sock.destroy()
    this.duplex.destroy()
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------
// One client session

class Session {
  constructor (ws, id) {
    this.ws = ws
    this.id = id
    this.pending = null
    this.digest = { challenge: null, nc: 0 }
    this.wsmanCount = 0
    this.amt = new AMT.Messages()
    this.ips = new IPS.Messages()
    this.cim = new CIM.Messages()
    this.done = false
    // TLS-tunnel state: whether WS-MAN travels as tls_data, the current tunnel, how many TLS
    // sessions were opened, and whether the next one must wait (after a reset or a failure).
    this.tunnelMode = false
    this.tunnel = null
    this.tunnels = 0
    this.reconfiguring = false
    // After activation AMT presents its self-signed certificate: RPS has no anchor for it yet
    // and accepts it (its "post-CCM transition" rule).
    this.activated = false
    this.portAck = null
  }

  sendTls (chunk, tunnel) {
    log({ dir: 'rps->client', json: { method: 'tls_data' }, tunnel, bytes: chunk.length })
    this.ws.send(envelope('tls_data', 'ok', '', Buffer.from(chunk).toString('base64')))
  }

  onTlsData (data) {
    log({ dir: 'client->rps', json: { method: 'tls_data' }, bytes: data.length })
    if (this.tunnel && !this.tunnel.dead) this.tunnel.inject(data)
    else log({ event: 'tls_data with no tunnel: dropped', bytes: data.length })
  }

  onConnectionReset (msg) {
    const why = Buffer.from(msg.payload || '', 'base64').toString('utf8')
    log({ dir: 'client->rps', json: { method: 'connection_reset' }, decoded_payload: why })
    if (this.tunnel) this.tunnel.kill(new TunnelFailure(`connection_reset (${why})`, 'reset'))
    this.tunnel = null
    this.reconfiguring = true
  }

  verifyAmt (sock) {
    const chain = presentedChain(sock)
    if (this.amtTlsCert) {
      const fp = new crypto.X509Certificate(this.amtTlsCert).fingerprint256
      if (chain.length > 0 && chain[0].fingerprint256 === fp) return { ok: true, reason: 'AMT presents the certificate this RPS installed' }
      return { ok: false, reason: `AMT presents ${chain.length ? chain[0].subject.replace(/\n/g, ', ') : 'nothing'}, not the certificate this RPS installed` }
    }
    if (this.activated) {
      return { ok: true, reason: `activated: AMT's certificate (${chain.length} presented) accepted without a trust anchor` }
    }
    if (!tunnelConfig.ca) return { ok: false, reason: 'no trusted root configured' }
    return verifyChain(chain, fs.readFileSync(tunnelConfig.ca, 'utf8'))
  }

  // One WS-MAN exchange through the tunnel, opening a TLS session first when there is none.
  async tunnelExchange (raw) {
    if (!this.tunnel || this.tunnel.dead) {
      if (this.reconfiguring) {
        log({ event: 'waiting before a new TLS session', ms: tunnelConfig.resetDelayMs })
        await sleep(tunnelConfig.resetDelayMs)
        this.reconfiguring = false
      }
      const opts = { ca: tunnelConfig.ca ? fs.readFileSync(tunnelConfig.ca, 'utf8') : undefined, verify: (sock) => this.verifyAmt(sock) }
      if (this.clientCert) Object.assign(opts, this.clientCert)
      const t = new Tunnel(this, ++this.tunnels, opts)
      this.tunnel = t
      log({ event: 'tls handshake', tunnel: t.id, clientCertificate: !!opts.cert })
      const verified = await t.connect()
      log({ event: 'tls session up', tunnel: t.id, protocol: t.sock.getProtocol(), verified })
    }
    const t = this.tunnel
    log({ dir: 'rps->amt', n: this.wsmanCount, tunnel: t.id, decoded_payload: raw.toString('latin1') })
    const r = await t.request(raw, tunnelConfig.responseTimeoutMs ?? config.responseTimeoutMs ?? 12000)
    log({ dir: 'amt->rps', n: this.wsmanCount, tunnel: t.id, decoded_payload: r.toString('latin1') })
    if (wantsClose(r)) {
      t.kill()
      if (this.tunnel === t) this.tunnel = null
    }
    return r
  }

  // RPS's port_switch: the client waits `delay` s, retargets AMT's port and acknowledges; later
  // WS-MAN travels in tls_data (rpc-go.md §3.7).
  async portSwitch (ps) {
    if (this.tunnel) this.tunnel.kill()
    this.tunnel = null
    const delay = ps.delay ?? 0
    const started = Date.now()
    this.send(envelope('port_switch', 'ok', '', JSON.stringify({ port: String(ps.port || 16993), delay })))
    const ack = await new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.portAck = null; reject(new FlowError('No port_switch_ack from the client')) }, delay * 1000 + (config.portSwitchAckTimeoutMs ?? 60000))
      this.portAck = (m) => { clearTimeout(t); resolve(m) }
    })
    const payload = Buffer.from(ack.payload || '', 'base64').toString('utf8')
    log({ event: 'port switched', waitedMs: Date.now() - started, ack: payload })
    if (payload !== 'ok') throw new FlowError(`port switch failed: ${payload}`)
    this.tunnelMode = true
  }

  send (text) {
    log({ dir: 'rps->client', json: JSON.parse(text) })
    this.ws.send(text)
  }

  progress (label) {
    if (this.payload.progressSupported) this.send(envelope('progress', 'ok', label, null))
  }

  final (ok, message) {
    if (this.done) return
    this.done = true
    // Components a flow step recorded (Wi-Fi, TLS) replace the NotApplicable defaults in place;
    // a TLS flow that ran is also RPS's flat TLSConfiguration.
    if (this.componentResults) {
      try {
        const m = JSON.parse(message)
        if (m.Components) {
          Object.assign(m.Components, this.componentResults)
          const tls = this.componentResults.TLS
          if (tls && tls.Result !== 'NotApplicable') m.TLSConfiguration = tls.Result === 'Success' ? 'Configured' : 'Failed'
          message = JSON.stringify(m)
        }
      } catch (_) {}
    }
    this.send(envelope(ok ? 'success' : 'error', ok ? 'success' : 'failed', message, null))
  }

  authorization () {
    const c = this.digest.challenge
    if (!c) return null
    this.digest.nc += 1
    const nc = this.digest.nc.toString(16).padStart(8, '0')
    const cn = cnonce()
    const ha1 = md5(`${this.user}:${c.realm}:${this.pass}`)
    const ha2 = md5('POST:/wsman')
    const response = md5(`${ha1}:${c.nonce}:${nc}:${cn}:auth:${ha2}`)
    return `Digest username="${this.user}",realm="${c.realm}",nonce="${c.nonce}",uri="/wsman",qop="auth",response="${response}",nc="${nc}",cnonce="${cn}"`
  }

  rawRequest (xml, auth) {
    const body = Buffer.from(xml, 'utf8')
    let head = 'POST /wsman HTTP/1.1\r\n'
    if (auth) head += `Authorization: ${auth}\r\n`
    // In the tunnel RPS keeps the connection (rpc-go.md §3.6): no `Connection: close`.
    head += this.tunnelMode
      ? `Host: ${this.payload.uuid}:16993\r\nTransfer-Encoding: chunked\r\n\r\n`
      : `Host: ${this.payload.uuid}:16992\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`
    return Buffer.concat([Buffer.from(head + body.length.toString(16).toUpperCase() + '\r\n'), body, Buffer.from('\r\n0\r\n\r\n')])
  }

  // One wsman message and its `response` (strictly one request, one answer).
  exchange (raw) {
    this.wsmanCount += 1
    if (config.closeAfter && this.wsmanCount > config.closeAfter) {
      log({ event: 'closing mid-flow', after: config.closeAfter })
      this.ws.terminate()
      return new Promise(() => {})
    }
    // Fault injection (docs/robustness.md): a broken message in place of wsman number malformedAt.
    if (config.malformed && this.wsmanCount === (config.malformedAt || 1)) {
      log({ event: 'sending a malformed message', kind: config.malformed })
      if (config.malformed === 'json') this.ws.send('{"method":"wsman","payload":')
      else if (config.malformed === 'binary') this.ws.send(Buffer.from('binary frame'), { binary: true })
      else if (config.malformed === 'base64') this.ws.send(envelope('wsman', 'ok', '', '%%% not base64 %%%'))
      else if (config.malformed === 'huge') this.ws.send(envelope('wsman', 'ok', '', 'A'.repeat(5 << 20)))
      return new Promise(() => {})
    }
    if (this.tunnelMode) return this.tunnelExchange(raw)
    log({ dir: 'rps->client', n: this.wsmanCount, json: { method: 'wsman' }, decoded_payload: raw.toString('latin1') })
    this.ws.send(envelope('wsman', 'ok', '', raw.toString('base64')))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.pending = null; reject(new FlowError('timeout waiting for the client')) }, (config.responseTimeoutMs ?? 12000))
      this.pending = (r) => { clearTimeout(timer); resolve(r) }
    })
  }

  // The swallowed unauthenticated probe of already-activated devices (§3).
  async probe (xml) {
    const r = splitHttp(await this.exchange(this.rawRequest(xml, null)))
    if (r.status === 401 && config.keepProbeChallenge) this.digest.challenge = parseChallenge(r.headers['www-authenticate'])
  }

  // Sends a WS-MAN call with RPS's Digest; resolves to the parsed envelope (or the fault on 400).
  async call (xml, { tolerate400 = false } = {}) {
    let unauthorized = 0
    let attempts = 0
    let tunnelFailures = 0
    for (;;) {
      let raw
      try {
        raw = await this.exchange(this.rawRequest(xml, this.authorization()))
      } catch (e) {
        if (!(e instanceof TunnelFailure)) throw e
        tunnelFailures += 1
        log({ event: 'tunnel failure', kind: e.kind, error: e.message, attempt: tunnelFailures })
        if (this.tunnel) this.tunnel.kill()
        this.tunnel = null
        this.reconfiguring = true
        if (tunnelFailures >= tunnelConfig.attempts) throw new FlowError(`TLS tunnel to AMT failed: ${e.message}`)
        continue
      }
      const r = splitHttp(raw)
      if (r.status === 401) {
        unauthorized += 1
        if (unauthorized >= 3) throw new FlowError('Unable to authenticate with AMT')
        if (!this.digest.challenge) {
          this.digest.challenge = parseChallenge(r.headers['www-authenticate'] || '')
          this.digest.nc = 0
        }
        continue
      }
      if (r.status === 200 && config.closeAfterCall && xml.includes(config.closeAfterCall)) {
        log({ event: 'closing after a call', call: config.closeAfterCall })
        this.ws.terminate()
        return new Promise(() => {})
      }
      if (r.status === 200) {
        try {
          return await parseXml(dechunk(r.body).toString('utf8'))
        } catch (e) {
          attempts += 1
          log({ event: 'parse error', error: String(e) })
          if (attempts >= 3) throw new FlowError('Unknown error has occured')
          continue
        }
      }
      if (r.status === 400 && tolerate400) return null
      let fault = ''
      try { fault = JSON.stringify(await parseXml(r.body.toString('utf8'))) } catch (e) { fault = r.body.toString('utf8') }
      throw new FlowError(`AMT answered HTTP ${r.status}: ${fault.slice(0, 300)}`)
    }
  }

  async enumPull (cls) {
    const e = await this.call(cls.Enumerate())
    const ctx = e.Envelope.Body.EnumerateResponse.EnumerationContext
    const p = await this.call(cls.Pull(ctx))
    const items = p.Envelope.Body.PullResponse.Items
    if (items === undefined) throw new FlowError('Unknown error has occured')
    return items
  }

  body (r) { return r.Envelope.Body }

  // ------------------------------------------------------------------ message dispatch
  async onFirst (msg) {
    if (msg.protocolVersion !== undefined) {
      const [a, b, c] = String(msg.protocolVersion).split('.').map(Number)
      const [x, y, z] = RPS_PROTOCOL.split('.').map(Number)
      if (a !== x || b !== y || !(c <= z)) return this.final(false, `Error: protocol version NOT supported: ${msg.protocolVersion}`)
    }
    let p
    try {
      p = JSON.parse(Buffer.from(msg.payload || '', 'base64').toString('utf8'))
    } catch (e) {
      return this.final(false, `SyntaxError: ${e.message.replace(/^.*?: /, '')}`)
    }
    if (!p.client || !p.ver || !p.build || !p.uuid) return this.final(false, 'Invalid payload from client')
    if (String(p.uuid).length !== 36) return this.final(false, `${this.id} - uuid not valid length`)
    this.payload = p
    this.tunnelMode = p.tlsEnforced === true
    this.activated = p.currentMode === 1 || p.currentMode === 2
    log({ dir: 'client->rps', first: true, method_redacted: String(msg.method).replace(/(-?-password|-p|--changepassword) \S+/g, '$1 ***'), payload_keys: Object.keys(p) })
    const argv = String(msg.method).split(/\s+/)
    const cmd = argv[0]
    const flag = (names) => { for (const n of names) { const i = argv.indexOf(n); if (i >= 0) return argv[i + 1] && !argv[i + 1].startsWith('-') ? argv[i + 1] : true } return undefined }
    const force = argv.includes('-f') || argv.includes('--force')
    const password = flag(['--password', '-password', '-p']) || p.password
    if (config.heartbeat) this.send(envelope('heartbeat_request', 'heartbeat', '', ''))
    try {
      if (cmd === 'activate') await this.activate(flag(['--profile', '-profile']), p)
      else if (cmd === 'deactivate') await this.deactivate(password, force, p)
      else if (cmd === 'maintenance') await this.maintenance(argv, flag, password, force, p)
      else this.final(false, 'Not a supported method received from AMT device')
    } catch (e) {
      if (!(e instanceof FlowError)) log({ event: 'peer bug', error: String(e.stack) })
      if (this.task) return this.final(false, JSON.stringify({ Status: `${this.task} failed at ${this.taskState} ${e.message}` }))
      this.final(false, e.json === false ? e.message : flowError(e.message))
    }
  }

  checkStored (password, force, p) {
    if (!force && stored[p.uuid] !== undefined && stored[p.uuid] !== password) {
      throw new FlowError(`AMT password DOES NOT match stored version for Device ${p.uuid}`, false)
    }
  }

  // ------------------------------------------------------------------ activation (§5.1–5.3)
  async activate (profileName, p) {
    const profile = (config.profiles || {})[profileName]
    if (!profile) throw new FlowError(`Device ${p.uuid} activation failed. ${profileName} does not match list of available AMT profiles.`, false)
    if (!p.password) throw new FlowError(`Device ${p.uuid} activation failed. Missing password.`, false)
    if (profile.mode === 'bench') return this.bench(profile, p)
    const mode = p.currentMode
    if (![0, 1, 2].includes(mode)) throw new FlowError(`Device ${p.uuid} is in unknown mode.`, false)
    if (mode === 2 && profile.mode === 'ccm') throw new FlowError(`Device ${p.uuid} already enabled in admin control mode.`, false)
    let domain = null
    if (profile.mode === 'acm') {
      if (mode !== 2) {
        domain = (config.domains || []).find((d) => p.fqdn && (p.fqdn === d.suffix || p.fqdn.endsWith('.' + d.suffix)))
        if (!domain) throw new FlowError(`Device ${p.uuid} activation failed. Specified AMT domain suffix: ${p.fqdn} does not match list of available AMT domain suffixes.`, false)
        this.domain = domain
        const root = pemToDer(fs.readFileSync(domain.rootCert || '/dev/null', 'utf8'))
        const hashes = (p.certHashes || []).map((h) => String(h).toLowerCase())
        const fp = { 40: 'sha1', 64: 'sha256', 96: 'sha384' }
        const found = hashes.some((h) => fp[h.length] && crypto.createHash(fp[h.length]).update(root).digest('hex') === h)
        if (!found) throw new FlowError('Invalid domain certificate, hash does not exists in list of trusted root certificates on AMT')
      }
    }
    if (mode !== 0) this.checkStored(p.password, false, p)
    this.progress('Starting provisioning')
    if (mode === 0) {
      // AMT 19+ with an ACM profile: CCM first, then the upgrade (RPS's "SHBC" flow, §5.6).
      const shbc = profile.mode === 'acm' && parseFloat(p.ver) >= 19
      const commit = this.tunnelMode || parseFloat(p.ver) >= 19
      if (profile.mutualTls && this.domain) {
        this.clientCert = {
          cert: fs.readFileSync(this.domain.leafCert, 'utf8') + fs.readFileSync(this.domain.rootCert, 'utf8'),
          key: fs.readFileSync(this.domain.leafKey, 'utf8')
        }
      }
      this.user = p.username
      this.pass = p.password
      const gs = this.body(await this.call(this.amt.GeneralSettings.Get())).AMT_GeneralSettings
      this.realm = this.checkRealm(gs)
      this.generalSettings = gs
      const netPw = md5(`admin:${this.realm}:${profile.password}`)
      if (profile.mode === 'ccm' || shbc) {
        const r = this.body(await this.call(this.ips.HostBasedSetupService.Setup(2, netPw)))
        if (r.Setup_OUTPUT.ReturnValue !== 0) throw new FlowError('Failed to activate in client control mode.')
        // New TLS sessions now meet AMT's self-signed certificate.
        this.activated = true
        if (commit) {
          // §5.1 step 2 for AMT ≥ 19 / tlsEnforced: commit the configuration, as admin.
          this.user = 'admin'
          this.pass = profile.password
          const c = this.body(await this.call(this.amt.SetupAndConfigurationService.CommitChanges()))
          if (c.CommitChanges_OUTPUT.ReturnValue !== 0) throw new FlowError('Failed to activate in client control mode.')
        }
      } else {
        const hbs = this.body(await this.call(this.ips.HostBasedSetupService.Get())).IPS_HostBasedSetupService
        await this.addChain()
        const { mcNonce, sig } = this.sign(hbs.ConfigurationNonce)
        const r = this.body(await this.call(this.ips.HostBasedSetupService.AdminSetup(2, netPw, mcNonce, 2, sig)))
        if (r.AdminSetup_OUTPUT.ReturnValue !== 0) throw new FlowError('Failed to activate in admin control mode.')
        this.activated = true
      }
      this.progress('Activation completed')
      await new Promise((resolve) => setTimeout(resolve, delayMs))
      this.user = 'admin'
      this.pass = profile.password
      stored[p.uuid] = profile.password
      if (profile.portSwitch) await this.portSwitch(profile.portSwitch)
      if (shbc) {
        const hbs = this.body(await this.call(this.ips.HostBasedSetupService.Get())).IPS_HostBasedSetupService
        await this.addChain()
        const { mcNonce, sig } = this.sign(hbs.ConfigurationNonce)
        const r = this.body(await this.call(this.ips.HostBasedSetupService.UpgradeClientToAdmin(mcNonce, 2, sig)))
        if (r.UpgradeClientToAdmin_OUTPUT.ReturnValue !== 0) throw new FlowError('Failed to upgrade to admin control mode.')
      }
      if (profile.mode === 'acm') await this.setMebx(profile)
      await this.configure(profile)
      await this.maybeTls(profile)
      const cira = await this.cira(profile)
      if (profile.mode === 'ccm') return this.final(true, activationSuccess('Client control mode.', 'CCM', 'Client control mode', cira))
      if (shbc) return this.final(true, activationSuccess('Upgraded to admin control mode.', 'ACM', 'Upgraded to admin control mode', cira))
      return this.final(true, activationSuccess('Activated to admin control mode.', 'ACM', 'Activated to admin control mode', cira))
    }
    // Already activated (§5.3): the swallowed probe, then GeneralSettings 401 → admin.
    this.user = 'admin'
    this.pass = p.password
    await this.probe(this.amt.TLSSettingData.Enumerate())
    const gs = this.body(await this.call(this.amt.GeneralSettings.Get())).AMT_GeneralSettings
    this.realm = this.checkRealm(gs)
    this.generalSettings = gs
    await this.enumPull(this.amt.TLSSettingData)
    const aclDigest = md5raw(`admin:${this.realm}:${profile.password}`).toString('base64')
    if (profile.mode === 'acm' && mode === 1) {
      const hbs = this.body(await this.call(this.ips.HostBasedSetupService.Get())).IPS_HostBasedSetupService
      await this.addChain()
      const { mcNonce, sig } = this.sign(hbs.ConfigurationNonce)
      const r = this.body(await this.call(this.ips.HostBasedSetupService.UpgradeClientToAdmin(mcNonce, 2, sig)))
      if (r.UpgradeClientToAdmin_OUTPUT.ReturnValue !== 0) throw new FlowError('Failed to upgrade to admin control mode.')
    }
    const acl = this.body(await this.call(this.amt.AuthorizationService.SetAdminACLEntryEx('admin', aclDigest)))
    if (acl.SetAdminAclEntryEx_OUTPUT.ReturnValue !== 0) throw new FlowError('Failed to update the AMT password.')
    this.pass = profile.password
    stored[p.uuid] = profile.password
    if (profile.mode === 'acm') await this.setMebx(profile)
    await this.configure(profile)
    await this.maybeTls(profile)
    const cira = await this.cira(profile)
    if (profile.mode === 'acm' && mode === 1) return this.final(true, activationSuccess('Upgraded to admin control mode.', 'ACM', 'Upgraded to admin control mode', cira))
    if (profile.mode === 'acm') return this.final(true, reactivationSuccess('already enabled in admin mode.', 'ACM', 'Already enabled in admin mode', cira))
    return this.final(true, reactivationSuccess('already enabled in client mode.', 'CCM', 'Already enabled in client mode', cira))
  }

  // `make bench`: the same request relayed through the agent and sent straight to the simulator's
  // LMS-like listener, alternately; round-trip times in microseconds go to profile.out.
  async bench (profile, p) {
    this.user = p.username
    this.pass = p.password
    const xml = this.amt.GeneralSettings.Get()
    await this.call(xml)
    const relay = []
    const direct = []
    for (let i = 0; i < (profile.count || 200); i++) {
      // Both sides do the same work: build the request, get the raw answer, read its status.
      let t = process.hrtime.bigint()
      const relayed = await this.exchange(this.rawRequest(xml, this.authorization()))
      relay.push(Number(process.hrtime.bigint() - t) / 1000)
      if (splitHttp(relayed).status !== 200) throw new FlowError('relayed request failed')
      t = process.hrtime.bigint()
      const raw = await directExchange(profile.lmsPort, this.rawRequest(xml, this.authorization()))
      direct.push(Number(process.hrtime.bigint() - t) / 1000)
      if (splitHttp(raw).status !== 200) throw new FlowError('direct request failed')
    }
    fs.writeFileSync(profile.out, JSON.stringify({ relay, direct }))
    this.final(true, JSON.stringify({ Status: 'bench done' }))
  }

  checkRealm (gs) {
    const realm = gs.DigestRealm
    if (!/^Digest:[0-9A-Fa-f]{32}$/.test(realm)) throw new FlowError('Not a valid digest realm.')
    return realm
  }

  async setMebx (profile) {
    const r = this.body(await this.call(this.amt.SetupAndConfigurationService.SetMEBXPassword(profile.mebxPassword)))
    if (r.SetMEBxPassword_OUTPUT.ReturnValue !== 0) throw new FlowError('Failed to set MEBx password.')
  }

  async addChain () {
    if (!this.chain) this.chain = loadChain(this.domain)
    const certs = [this.chain.leaf, ...this.chain.intermediates, this.chain.root]
    for (let i = 0; i < certs.length; i++) {
      const r = this.body(await this.call(this.ips.HostBasedSetupService.AddNextCertInChain(certs[i].toString('base64'), i === 0, i === certs.length - 1)))
      if (r.AddNextCertInChain_OUTPUT.ReturnValue !== 0) throw new FlowError('Failed to add certificate to AMT.')
    }
  }

  sign (configurationNonce) {
    const fwNonce = Buffer.from(String(configurationNonce), 'base64')
    const mc = crypto.randomBytes(20)
    const sig = crypto.sign('sha256', Buffer.concat([fwNonce, mc]), this.chain.key)
    return { mcNonce: mc.toString('base64'), sig: sig.toString('base64') }
  }

  // Clearing previous configuration, network and features (§5.1 steps 4–6).
  async configure (profile) {
    this.progress('Clearing previous configuration')
    const eps = asArray((await this.enumPull(this.amt.EthernetPortSettings)).AMT_EthernetPortSettings)
    const wired = eps.find((e) => String(e.InstanceID).includes('Settings 0'))
    const wireless = eps.find((e) => String(e.InstanceID).includes('Settings 1'))
    if (wired && wired.MACAddress) {
      const x = this.body(await this.call(this.ips.IEEE8021xSettings.Get())).IPS_IEEE8021xSettings
      if (x && (x.Enabled === 2 || x.Enabled === 6)) {
        await this.call(this.ips.IEEE8021xSettings.Put(Object.assign({}, x, { Enabled: 3 })))
      }
    }
    if (wireless && wireless.MACAddress) {
      const w = asArray((await this.enumPull(this.cim.WiFiEndpointSettings)).CIM_WiFiEndpointSettings)
      // RPS's unconfiguration.ts passes the { name, value } selector (wsman-messages writes no value for { InstanceID: x }).
      for (const s of w) if (s.Priority) await this.call(this.cim.WiFiEndpointSettings.Delete({ name: 'InstanceID', value: s.InstanceID }))
    }
    const proxies = asArray((await this.enumPull(this.ips.HTTPProxyAccessPoint)).IPS_HTTPProxyAccessPoint)
    for (const ap of proxies) await this.call(this.ips.HTTPProxyAccessPoint.Delete({ name: 'Name', value: ap.Name }))
    // unconfiguration.ts: { name, value } selectors (wsman-messages writes { Key: value } as an
    // empty selector).
    for (const rule of ['User Initiated', 'Alert', 'Periodic']) {
      await this.call(this.amt.RemoteAccessPolicyRule.Delete({ name: 'PolicyRuleName', value: rule }), { tolerate400: true })
    }
    const saps = asArray((await this.enumPull(this.amt.ManagementPresenceRemoteSAP)).AMT_ManagementPresenceRemoteSAP)
    for (const s of saps) await this.call(this.amt.ManagementPresenceRemoteSAP.Delete({ name: 'Name', value: s.Name }))
    const tls = asArray((await this.enumPull(this.amt.TLSSettingData)).AMT_TLSSettingData)
    if (tls.length < 2) throw new FlowError('Unknown error has occured')
    const pkc = asArray((await this.enumPull(this.amt.PublicKeyCertificate)).AMT_PublicKeyCertificate)
    for (const c of pkc) await this.call(this.amt.PublicKeyCertificate.Delete({ name: 'InstanceID', value: c.InstanceID }))
    await this.call(this.amt.EnvironmentDetectionSettingData.Get())
    this.progress('Configuring network settings')
    const gs = this.generalSettings
    if (gs && (gs.SharedFQDN === false || gs.AMTNetworkEnabled !== 1 || gs.RmcpPingResponseEnabled === false)) {
      await this.call(this.amt.GeneralSettings.Put(Object.assign({}, gs, { SharedFQDN: true, AMTNetworkEnabled: 1, RmcpPingResponseEnabled: true })))
    }
    const eps2 = asArray((await this.enumPull(this.amt.EthernetPortSettings)).AMT_EthernetPortSettings)
    const w0 = eps2.find((e) => String(e.InstanceID).includes('Settings 0'))
    if (w0) {
      const put = Object.assign({}, w0, { DHCPEnabled: true, IpSyncEnabled: true, SharedStaticIp: false })
      for (const k of ['IPAddress', 'SubnetMask', 'DefaultGateway', 'PrimaryDNS', 'SecondaryDNS']) delete put[k]
      const r = this.body(await this.call(this.amt.EthernetPortSettings.Put(put))).AMT_EthernetPortSettings
      if (!r || r.DHCPEnabled !== true || r.IpSyncEnabled !== true || r.SharedStaticIp !== false) throw new FlowError('Failed to put to ethernet port settings')
    }
    this.progress('Wired network configuration completed')
    const w1 = eps2.find((e) => String(e.InstanceID).includes('Settings 1'))
    const wifiWanted = (profile.wifiConfigs || []).length > 0 || profile.localWifiSyncEnabled || profile.uefiWifiSyncEnabled
    if (w1 && w1.MACAddress && !/^[0-]*$/.test(String(w1.MACAddress)) && wifiWanted) await this.configureWireless(profile, w1)
    this.progress('Configuring AMT features')
    const redir = this.body(await this.call(this.amt.RedirectionService.Get())).AMT_RedirectionService
    const optIn = this.body(await this.call(this.ips.OptInService.Get())).IPS_OptInService
    const kvm = this.body(await this.call(this.cim.KVMRedirectionSAP.Get())).CIM_KVMRedirectionSAP
    if (redir.EnabledState !== 32771 || redir.ListenerEnabled !== true || (kvm.EnabledState !== 2 && kvm.EnabledState !== 6)) {
      await this.call(this.amt.RedirectionService.RequestStateChange(32771))
      await this.call(this.cim.KVMRedirectionSAP.RequestStateChange(2))
      await this.call(this.amt.RedirectionService.Put(Object.assign({}, redir, { EnabledState: 32771, ListenerEnabled: true })))
    }
    const want = profile.userConsent === 'None' ? 0 : profile.userConsent === 'KVM' ? 1 : 4294967295
    if (optIn.OptInRequired !== want) {
      // wsman-messages' OptInService.Put alone takes the response shape ({ IPS_OptInService: … })
      // and puts its first key's value: given the bare instance it sends an empty body.
      await this.call(this.ips.OptInService.Put({ IPS_OptInService: Object.assign({}, optIn, { OptInRequired: want }) }))
    }
    this.progress(`AMT features completed: KVM, SOL, IDER (User Consent: ${profile.userConsent || 'All'})`)
  }

  // ------------------------------------------------------------------ TLS (§5.6, tls.ts)
  // RPS provisions a profile's TLS only with the tunnel: asked for (tlsTunnel) or enforced.
  // The TLS component goes to the final message with the other components a flow step recorded.
  async maybeTls (profile) {
    if (!profile.tls) return
    this.componentResults = this.componentResults || {}
    if (!this.payload.tlsTunnel && !this.payload.tlsEnforced) {
      this.componentResults.TLS = { Result: 'NotApplicable', Details: 'TLS not applicable: the client did not ask for the TLS tunnel' }
      return
    }
    this.progress('Configuring TLS')
    try {
      await this.configureTls(profile.tls)
      this.componentResults.TLS = { Result: 'Success', Details: 'Configured' }
    } catch (e) {
      this.componentResults.TLS = { Result: 'Failure', Details: e.message }
      throw e
    }
  }

  // ------------------------------------------------------------------ CIRA (§5.1 step 7, §5.6)
  // ciraConfiguration.ts, state by state. Its only ReturnValue check is the user-initiated
  // connection service's; any other call fails the flow only by an HTTP error or a fault, as in
  // RPS. Answers the status message: 'Configured', or the failing state's. `profile.cira`:
  // { mpsAddress, mpsPort, username, password (else random), rootCert (PEM file),
  //   serverAddressFormat (3 IPv4, 201 FQDN; default from the address), commonName }.
  async cira (profile) {
    const c = profile.cira
    if (!c) return undefined
    const state = (fail, fn) => fn().catch((e) => {
      if (!(e instanceof FlowError)) throw e
      log({ event: 'cira failed', state: fail, error: e.message })
      throw new CiraFailure(fail)
    })
    try {
      const password = c.password || randomMpsPassword()
      const pem = fs.readFileSync(c.rootCert, 'utf8')
      await state('Failed to add trusted root certificate', () => this.call(this.amt.PublicKeyManagementService.AddTrustedRootCertificate({
        CertificateBlob: pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')
      })))
      // SAVE_MPS_PASSWORD_TO_SECRET_PROVIDER, SAVE_DEVICE_TO_MPS: RPS's own stores.
      if (config.mpsUnavailable) throw new CiraFailure('Failed to save device to mps')
      const format = c.serverAddressFormat || (/^[0-9.]+$/.test(c.mpsAddress) ? 3 : 201)
      const server = { AccessInfo: c.mpsAddress, InfoFormat: format, Port: c.mpsPort || 4433, AuthMethod: 2, Username: c.username || 'admin', Password: password }
      if (format === 3 && c.commonName) server.CommonName = c.commonName
      await state('Failed to add mps', () => this.call(this.amt.RemoteAccessService.AddMPS(server)))
      const sapPull = await state('Failed to Pull Management Presence Remote SAP', async () => {
        const e = await this.call(this.amt.ManagementPresenceRemoteSAP.Enumerate())
        return this.call(this.amt.ManagementPresenceRemoteSAP.Pull(e.Envelope.Body.EnumerateResponse.EnumerationContext))
      })
      const selector = { name: 'Name', value: sapPull.Envelope.Body.PullResponse.Items.AMT_ManagementPresenceRemoteSAP.Name }
      await state('Failed to add remote policy access rule', () => this.call(this.amt.RemoteAccessService.AddRemoteAccessPolicyRule({ Trigger: 2, TunnelLifeTime: 0, ExtendedData: 'AAAAAAAAABk=' }, selector)))
      await state('Failed to add User Initiated remote policy access rule', () => this.call(this.amt.RemoteAccessService.AddRemoteAccessPolicyRule({ Trigger: 0, TunnelLifeTime: 300, ExtendedData: '' }, selector)))
      const applies = await state('Failed to pull AMT_RemoteAccessPolicyAppliesToMPS', async () => {
        const e = await this.call(this.amt.RemoteAccessPolicyAppliesToMPS.Enumerate())
        return this.call(this.amt.RemoteAccessPolicyAppliesToMPS.Pull(e.Envelope.Body.EnumerateResponse.EnumerationContext))
      })
      for (const data of asArray(applies.Envelope.Body.PullResponse.Items.AMT_RemoteAccessPolicyAppliesToMPS)) {
        data.MpsType = 2
        data.OrderOfAccess = 0
        // RPS's own header selectors: server 0, and the rule's name lost with xml2js's
        // ignoreAttrs ("undefined").
        const custom = `</w:OperationTimeout><wsman:SelectorSet xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><wsman:Selector Name="ManagedElement"><EndpointReference xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing"><Address xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</Address><ReferenceParameters xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing"><ResourceURI xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">http://intel.com/wbem/wscim/1/amt-schema/1/AMT_ManagementPresenceRemoteSAP</ResourceURI><SelectorSet xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><Selector Name="CreationClassName">AMT_ManagementPresenceRemoteSAP</Selector><Selector Name="Name">Intel(r) AMT:Management Presence Server 0</Selector><Selector Name="SystemCreationClassName">CIM_ComputerSystem</Selector><Selector Name="SystemName">Intel(r) AMT</Selector></SelectorSet></ReferenceParameters></EndpointReference></wsman:Selector><wsman:Selector Name="PolicySet"><EndpointReference xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing"><Address xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</Address><ReferenceParameters xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing"><ResourceURI xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">http://intel.com/wbem/wscim/1/amt-schema/1/AMT_RemoteAccessPolicyRule</ResourceURI><SelectorSet xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><Selector Name="CreationClassName">AMT_RemoteAccessPolicyRule</Selector><Selector Name="PolicyRuleName">undefined</Selector><Selector Name="SystemCreationClassName">CIM_ComputerSystem</Selector><Selector Name="SystemName">Intel(r) AMT</Selector></SelectorSet></ReferenceParameters></EndpointReference></wsman:Selector></wsman:SelectorSet>`
        await state('Failed to put AMT_RemoteAccessPolicyAppliesToMPS', () => this.call(this.amt.RemoteAccessPolicyAppliesToMPS.Put(data).replace('</w:OperationTimeout>', custom)))
      }
      const uic = await state('Failed to set user initiated connection service', () => this.call(this.amt.UserInitiatedConnectionService.RequestStateChange(32771)))
      if (uic.Envelope.Body?.RequestStateChange_OUTPUT?.ReturnValue !== 0) throw new CiraFailure('Failed to set user initiated connection service')
      const env = await state('Failed to get user initiated connection service', () => this.call(this.amt.EnvironmentDetectionSettingData.Get()))
      const settings = env.Envelope.Body.AMT_EnvironmentDetectionSettingData
      settings.DetectionStrings = [config.disableCiraDomainName || `${crypto.randomUUID()}.com`]
      await state('Failed to set user initiated connection service', () => this.call(this.amt.EnvironmentDetectionSettingData.Put(settings)))
      return 'Configured'
    } catch (e) {
      if (e instanceof CiraFailure) return e.message
      throw e
    }
  }

  async configureTls (t) {
    const rootPem = fs.readFileSync(t.rootCert, 'utf8')
    const rootKey = forge.pki.privateKeyFromPem(fs.readFileSync(t.rootKey, 'utf8'))
    const rootCert = forge.pki.certificateFromPem(rootPem)
    await this.enumPull(this.amt.PublicKeyCertificate)
    const rootB64 = pemToDer(rootPem).toString('base64')
    const added = this.body(await this.call(this.amt.PublicKeyManagementService.AddTrustedRootCertificate({ CertificateBlob: rootB64 }))).AddTrustedRootCertificate_OUTPUT
    // A root added by an earlier run answers DUPLICATE (2058): it is there, which is what counts.
    if (added.ReturnValue !== 0 && added.ReturnValue !== 2058) throw new FlowError('Failed to add trusted root certificates')
    const gen = this.body(await this.call(this.amt.PublicKeyManagementService.GenerateKeyPair({ KeyAlgorithm: 0, KeyLength: 2048 }))).GenerateKeyPair_OUTPUT
    if (gen.ReturnValue !== 0) throw new FlowError('Failed to generate key pair')
    const handle = selectorText(gen.KeyPair)
    const pairs = asArray((await this.enumPull(this.amt.PublicPrivateKeyPair)).AMT_PublicPrivateKeyPair)
    const pair = pairs.find((k) => k.InstanceID === handle)
    if (!pair) throw new FlowError('Failed to pull public private key pair')
    // CertManager.amtCertSignWithCAKey: subject CN=AMT, O/ST/C None; issuer CN=<device uuid>;
    // extKeyUsage serverAuth; SHA-256 by the root's key.
    const cert = forge.pki.createCertificate()
    cert.publicKey = rsaPublicFromDer(String(pair.DERKey))
    cert.serialNumber = '01' + crypto.randomBytes(8).toString('hex')
    cert.validity.notBefore = new Date(Date.now() - 86400000)
    cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 86400000)
    cert.setSubject([{ name: 'commonName', value: 'AMT' }, { name: 'organizationName', value: 'None' }, { name: 'stateOrProvinceName', value: 'None' }, { name: 'countryName', value: 'None' }])
    cert.setIssuer(rootCert.subject.attributes)
    cert.setExtensions([{ name: 'extKeyUsage', serverAuth: true }])
    cert.sign(rootKey, forge.md.sha256.create())
    const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary')
    const addc = this.body(await this.call(this.amt.PublicKeyManagementService.AddCertificate({ CertificateBlob: der.toString('base64') }))).AddCertificate_OUTPUT
    if (addc.ReturnValue !== 0) throw new FlowError('Failed to add certificate')
    const certHandle = selectorText(addc.CreatedCertificate)
    // AlreadyExists is tolerated, as RPS's alreadyExists guard does.
    await this.call(this.amt.TLSCredentialContext.Create(certHandle), { tolerate400: true })
    const ta = this.body(await this.call(this.amt.TimeSynchronizationService.GetLowAccuracyTimeSynch())).GetLowAccuracyTimeSynch_OUTPUT
    const now = Math.floor(Date.now() / 1000)
    await this.call(this.amt.TimeSynchronizationService.SetHighAccuracyTimeSynch(ta.Ta0, now, now))
    const items = asArray((await this.enumPull(this.amt.TLSSettingData)).AMT_TLSSettingData)
    if (items.length < 2) throw new FlowError('Failed to pull TLS data')
    const remote = Object.assign({}, items[0], { Enabled: true })
    if (!('NonSecureConnectionsSupported' in items[0]) || items[0].NonSecureConnectionsSupported === true) {
      remote.AcceptNonSecureConnections = t.mode !== 1 && t.mode !== 3
    }
    remote.MutualAuthentication = t.mode === 3 || t.mode === 4
    await this.call(this.amt.TLSSettingData.Put(remote))
    await sleep(t.putDelayMs ?? 0)
    await this.call(this.amt.TLSSettingData.Put(Object.assign({}, items[1], { Enabled: true })))
    const c = this.body(await this.call(this.amt.SetupAndConfigurationService.CommitChanges())).CommitChanges_OUTPUT
    if (c.ReturnValue !== 0) throw new FlowError('Failed to commit changes')
    // From now on AMT's TLS presents the certificate made above.
    this.amtTlsCert = der
    log({ event: 'tls configured', certificate: new crypto.X509Certificate(der).fingerprint256 })
    if (this.tunnelMode) {
      // AMT restarts its TLS stack: the next request needs a new TLS session.
      if (this.tunnel) this.tunnel.kill()
      this.tunnel = null
    } else {
      await this.portSwitch({ port: 16993, delay: t.portSwitchDelay ?? 0 })
    }
    // One read through the tunnel proves AMT serves the new certificate.
    await this.call(this.amt.GeneralSettings.Get())
  }

  // Wi-Fi (rps-protocol.md §5.1 step 5; RPS's wifiNetworkConfiguration.ts): the wireless port's
  // Put (DHCP, ConsoleTcpMaxRetransmissions 5), the port configuration service and, when a sync is
  // off, AMT_BootCapabilities and its Put, CIM_WiFiPort.RequestStateChange(32769), then each
  // profile. A PEAP-MSCHAPv2 profile's user name, password and RADIUS root come, in RPS, from the
  // Enterprise Assistant; here from the profile's `ieee8021x` (the stand-in EA's answer), and the
  // root is added with AddTrustedRootCertificate before AddWiFiSettings references it. EAP-TLS
  // through the EA (GenerateKeyPair, GeneratePKCS10RequestEx) is not played. A profile AMT refuses
  // does not stop the flow: the WirelessNetwork component reports it, as RPS does.
  async configureWireless (profile, wireless) {
    this.progress('Configuring wireless network')
    const put = Object.assign({}, wireless, { ConsoleTcpMaxRetransmissions: 5 })
    if (put.DHCPEnabled) for (const k of ['SubnetMask', 'DefaultGateway', 'IPAddress', 'PrimaryDNS', 'SecondaryDNS']) delete put[k]
    await this.call(this.amt.EthernetPortSettings.Put(put))
    const svc = this.body(await this.call(this.amt.WiFiPortConfigurationService.Get())).AMT_WiFiPortConfigurationService
    if (svc.localProfileSynchronizationEnabled === 0 || svc.UEFIWiFiProfileShareEnabled === false) {
      const boot = this.body(await this.call(this.amt.BootCapabilities.Get())).AMT_BootCapabilities
      const next = Object.assign({}, svc, { localProfileSynchronizationEnabled: profile.localWifiSyncEnabled === false ? 0 : 3 })
      if (boot && boot.UEFIWiFiCoExistenceAndProfileShare) next.UEFIWiFiProfileShareEnabled = profile.uefiWifiSyncEnabled ? 1 : 0
      await this.call(this.amt.WiFiPortConfigurationService.Put(next))
    }
    await this.call(this.cim.WiFiPort.RequestStateChange(32769))
    const added = []
    const failed = []
    let root = null
    for (const w of profile.wifiConfigs || []) {
      const settings = {
        ElementName: w.profileName,
        InstanceID: `Intel(r) AMT:WiFi Endpoint Settings ${w.profileName}`,
        AuthenticationMethod: w.authenticationMethod ?? 6,
        EncryptionMethod: w.encryptionMethod ?? 4,
        SSID: w.ssid,
        Priority: w.priority
      }
      let xml
      if (w.ieee8021x) {
        const x = w.ieee8021x
        if (!root) {
          const r = this.body(await this.call(this.amt.PublicKeyManagementService.AddTrustedRootCertificate({ CertificateBlob: pemToDer(fs.readFileSync(x.rootCert, 'utf8')).toString('base64') }))).AddTrustedRootCertificate_OUTPUT
          root = r.CreatedCertificate && r.CreatedCertificate.ReferenceParameters && String(r.CreatedCertificate.ReferenceParameters.SelectorSet.Selector)
        }
        const ieee = { ElementName: x.profileName, InstanceID: `Intel(r) AMT: 8021X Settings ${x.profileName}`, AuthenticationProtocol: 2, Username: x.username, Password: x.password }
        xml = this.amt.WiFiPortConfigurationService.AddWiFiSettings(settings, { name: 'Name', value: 'WiFi Endpoint 0' }, ieee, null, root)
      } else {
        xml = this.amt.WiFiPortConfigurationService.AddWiFiSettings(Object.assign(settings, { PSKPassPhrase: w.pskPassphrase }), { name: 'Name', value: 'WiFi Endpoint 0' })
      }
      const rv = this.body(await this.call(xml)).AddWiFiSettings_OUTPUT.ReturnValue
      if (rv === 0) {
        added.push(w.profileName)
        this.progress(`Added wireless profile ${w.profileName}${w.ieee8021x ? ' (802.1x)' : ''}`)
      } else {
        failed.push(w.profileName)
        this.progress(`Failed to add wireless profile ${w.profileName} (ReturnValue ${rv})`)
      }
    }
    this.componentResults = this.componentResults || {}
    if (failed.length) {
      this.componentResults.WirelessNetwork = { Result: 'Failure', Details: `Failed to add wireless profiles: ${failed.join(', ')}` }
    } else if (added.length) {
      this.componentResults.WirelessNetwork = { Result: 'Success', Details: 'Wireless Configured' }
    } else {
      this.componentResults.WirelessNetwork = { Result: 'Success', Mode: 'LocalProfileSync', Details: 'Local Profile Sync Configured' }
    }
    this.progress(failed.length ? 'Wireless network configuration failed' : 'Wireless network configuration completed')
  }

  // ------------------------------------------------------------------ deactivation (§5.4)
  async deactivate (password, force, p) {
    if (p.currentMode === 0) throw new FlowError(`Device ${p.uuid} is in pre-provisioning mode.`, false)
    this.checkStored(password, force, p)
    this.user = 'admin'
    this.pass = password
    const r = this.body(await this.call(this.amt.SetupAndConfigurationService.Unprovision(1)))
    if (r.Unprovision_OUTPUT.ReturnValue !== 0) throw new FlowError(`Failed to deactivate: Unprovision returned ${r.Unprovision_OUTPUT.ReturnValue}`)
    delete stored[p.uuid]
    this.final(true, JSON.stringify({ Status: config.mpsUnavailable ? 'Deactivated. MPS Unavailable.' : 'Deactivated' }))
  }

  // ------------------------------------------------------------------ maintenance (§5.5)
  async maintenance (argv, flag, password, force, p) {
    const task = ['synctime', 'syncip', 'synchostname', 'syncdeviceinfo', 'changepassword'].find((t) => argv.includes('--' + t))
    if (!task) throw new FlowError('Maintenance task not specified', false)
    if (p.currentMode === 0) throw new FlowError(`Device ${p.uuid} is in pre-provisioning mode.`, false)
    this.checkStored(password, force, p)
    this.user = 'admin'
    this.pass = password
    this.task = task
    if (task === 'synctime') {
      this.taskState = 'GET_LOW_ACCURACY_TIME_SYNCH'
      const r = this.body(await this.call(this.amt.TimeSynchronizationService.GetLowAccuracyTimeSynch())).GetLowAccuracyTimeSynch_OUTPUT
      if (r.ReturnValue !== 0) throw new FlowError(`ReturnValue ${r.ReturnValue}`)
      this.taskState = 'SET_HIGH_ACCURACY_TIME_SYNCH'
      const s = this.body(await this.call(this.amt.TimeSynchronizationService.SetHighAccuracyTimeSynch(r.Ta0, r.Ta0, r.Ta0))).SetHighAccuracyTimeSynch_OUTPUT
      if (s.ReturnValue !== 0) throw new FlowError(`ReturnValue ${s.ReturnValue}`)
    } else if (task === 'synchostname') {
      const want = p.hostnameInfo && p.hostnameInfo.hostname
      this.taskState = 'GET_GENERAL_SETTINGS'
      if (!want) throw new FlowError('hostnameInfo missing')
      const gs = this.body(await this.call(this.amt.GeneralSettings.Get())).AMT_GeneralSettings
      if (gs.HostName !== want) {
        this.taskState = 'PUT_GENERAL_SETTINGS'
        await this.call(this.amt.GeneralSettings.Put(Object.assign({}, gs, { HostName: want })))
      }
    } else if (task === 'syncip') {
      const ip = p.ipConfiguration
      this.taskState = 'ENUMERATE_ETHERNET_PORT_SETTINGS'
      if (!ip) throw new FlowError('ipConfiguration missing')
      const eps = asArray((await this.enumPull(this.amt.EthernetPortSettings)).AMT_EthernetPortSettings)
      const w0 = eps.find((e) => String(e.InstanceID).includes('Settings 0'))
      this.taskState = 'PUT_ETHERNET_PORT_SETTINGS'
      if (!w0) throw new FlowError('no wired port')
      if (w0.IPAddress === ip.ipAddress) throw new FlowError('IPAddress already synchronized')
      const put = Object.assign({}, w0, { IPAddress: ip.ipAddress, SubnetMask: ip.netmask, DefaultGateway: ip.gateway, PrimaryDNS: ip.primaryDns, SecondaryDNS: ip.secondaryDns, DHCPEnabled: false, IpSyncEnabled: false, SharedStaticIp: false })
      await this.call(this.amt.EthernetPortSettings.Put(put))
    } else if (task === 'changepassword') {
      let np = argv[argv.indexOf('--changepassword') + 1]
      if (!np || np.startsWith('-')) np = crypto.randomBytes(12).toString('base64').slice(0, 14) + 'a1!'
      this.taskState = 'GET_GENERAL_SETTINGS'
      const gs = this.body(await this.call(this.amt.GeneralSettings.Get())).AMT_GeneralSettings
      this.taskState = 'SET_ADMIN_ACL_ENTRY_EX'
      const d = md5raw(`admin:${gs.DigestRealm}:${np}`).toString('base64')
      const r = this.body(await this.call(this.amt.AuthorizationService.SetAdminACLEntryEx('admin', d))).SetAdminAclEntryEx_OUTPUT
      if (r.ReturnValue !== 0) throw new FlowError(`ReturnValue ${r.ReturnValue}`)
      stored[p.uuid] = np
    }
    this.task = null
    this.final(true, JSON.stringify({ Status: `${task} completed succesfully` }))
  }
}

function directExchange (port, raw) {
  return new Promise((resolve, reject) => {
    const chunks = []
    const sock = require('net').connect(port, '127.0.0.1', () => sock.write(raw))
    sock.on('data', (d) => chunks.push(d))
    sock.on('end', () => { sock.destroy(); resolve(Buffer.concat(chunks)) })
    sock.on('error', reject)
  })
}

// The InstanceID selector of an endpoint reference xml2js parsed (`<Selector Name=…>text`).
function selectorText (epr) {
  const sel = epr && epr.ReferenceParameters && epr.ReferenceParameters.SelectorSet && epr.ReferenceParameters.SelectorSet.Selector
  const one = Array.isArray(sel) ? sel[0] : sel
  return one && typeof one === 'object' ? one._ : one
}

// AMT's DERKey (PKCS#1 RSAPublicKey, or a SubjectPublicKeyInfo) as a forge public key.
function rsaPublicFromDer (b64) {
  const asn = forge.asn1.fromDer(forge.util.decode64(b64))
  try {
    return forge.pki.publicKeyFromAsn1(asn)
  } catch (e) {
    const n = new forge.jsbn.BigInteger(forge.util.bytesToHex(asn.value[0].value), 16)
    const ex = new forge.jsbn.BigInteger(forge.util.bytesToHex(asn.value[1].value), 16)
    return forge.pki.setRsaPublicKey(n, ex)
  }
}

function asArray (x) {
  if (x === undefined || x === null || x === '') return []
  return Array.isArray(x) ? x : [x]
}

function pemToDer (pem) {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64')
}

// The provisioning chain of a domain: PEM files (leaf, intermediates, root, leaf key).
function loadChain (d) {
  return {
    leaf: pemToDer(fs.readFileSync(d.leafCert, 'utf8')),
    intermediates: (d.intermediates || []).map((f) => pemToDer(fs.readFileSync(f, 'utf8'))),
    root: pemToDer(fs.readFileSync(d.rootCert, 'utf8')),
    key: crypto.createPrivateKey(fs.readFileSync(d.leafKey, 'utf8'))
  }
}

// ---------------------------------------------------------------------------------------------
// The server

const [host, port] = String(arg('listen', '127.0.0.1:0')).split(':')
const server = arg('tls-cert')
  ? https.createServer({ cert: fs.readFileSync(arg('tls-cert')), key: fs.readFileSync(arg('tls-key')) })
  : http.createServer()
if (config.requireToken) {
  server.on('upgrade', (req, socket) => {
    if (req.headers.authorization !== `Bearer ${config.requireToken}`) {
      socket.write('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n')
      socket.destroy()
    }
  })
}
const wss = new WebSocketServer({ server, maxPayload: MAX_PAYLOAD })
let clients = 0
wss.on('connection', (ws, req) => {
  if (config.requireToken && req.headers.authorization !== `Bearer ${config.requireToken}`) return ws.terminate()
  if (config.closeOn === 'connect') { log({ event: 'closing on connect' }); return ws.terminate() }
  const s = new Session(ws, `client-${++clients}`)
  let first = true
  ws.on('message', (data, isBinary) => {
    if (isBinary) { log({ event: 'binary frame: closing' }); return ws.close(1003) }
    let msg
    try { msg = JSON.parse(data.toString('utf8')) } catch (e) { return s.final(false, `SyntaxError: ${e.message}`) }
    if (first) {
      first = false
      if (config.closeOn === 'first') { log({ event: 'closing after the first message' }); return ws.terminate() }
      s.onFirst(msg).catch((e) => log({ event: 'peer bug', error: String(e.stack) }))
      return
    }
    // A heartbeat answer carries no secret: logged whole, so tests can check the echo (rpc-go.md §3.8).
    if (msg.method === 'heartbeat_response') { log({ dir: 'client->rps', json: msg }); return }
    if (msg.method === 'tls_data') return s.onTlsData(Buffer.from(msg.payload || '', 'base64'))
    if (msg.method === 'connection_reset') return s.onConnectionReset(msg)
    if (msg.method === 'port_switch_ack') {
      log({ dir: 'client->rps', json: { method: 'port_switch_ack' }, decoded_payload: Buffer.from(msg.payload || '', 'base64').toString('utf8') })
      const f = s.portAck
      s.portAck = null
      if (f) f(msg)
      return
    }
    if (msg.method !== 'response') { log({ dir: 'client->rps', json: { method: msg.method } }); return }
    const raw = Buffer.from(msg.payload || '', 'base64')
    log({ dir: 'client->rps', n: s.wsmanCount, json: { method: 'response' }, decoded_payload: raw.toString('latin1') })
    const p = s.pending
    s.pending = null
    if (p) p(raw)
  })
  ws.on('close', (code) => {
    if (s.tunnel) s.tunnel.kill()
    log({ event: 'client closed', code, final_sent: s.done, tls_sessions: s.tunnels })
    if (once) setTimeout(() => process.exit(0), 50)
  })
  ws.on('error', (e) => log({ event: 'ws error', error: String(e) }))
})
server.listen(Number(port), host, () => {
  process.stdout.write(`listening ${server.address().port}\n`)
})
process.on('SIGTERM', () => process.exit(0))
