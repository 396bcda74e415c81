#!/usr/bin/env node
// A test RPS for amt-agent. It speaks RPS 2.40.0's websocket protocol (4.0.0) as
// ../shared/reference/rps-protocol.md and the recorded traces show: the envelopes, the raw HTTP
// inside `wsman` (header order Authorization/Host/Transfer-Encoding/Connection, one chunk with an
// upper-case hex size), the 401-first Digest with one nonce for the whole session and an
// incrementing nc, the WS-MAN flows, the pause after Setup/AdminSetup, and the exact final
// messages. WS-MAN is built with Intel's wsman-messages and answers are parsed with xml2js, as
// RPS does, so the peer shares no WS-MAN code with amt-agent.
//
// Usage: node peer.js --config FILE [--listen 127.0.0.1:0] [--tls-cert PEM --tls-key PEM]
//                     [--log FILE] [--once]
// Prints `listening PORT` on stdout once it accepts connections.
'use strict'

const fs = require('fs')
const crypto = require('crypto')
const http = require('http')
const https = require('https')
const { WebSocketServer } = require('ws')
const xml2js = require('xml2js')
const { AMT, IPS, CIM } = require('@device-management-toolkit/wsman-messages')

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

function successComponents (activation) {
  return {
    Activation: activation,
    WiredNetwork: { Result: 'Success', Details: 'Wired Network Configured' },
    WirelessNetwork: { Result: 'NotApplicable', Details: 'Wireless network not part of this configuration' },
    TLS: NA.TLS,
    CIRAProxy: NA.CIRAProxy,
    CIRAConnection: NA.CIRAConnection
  }
}

// Fresh activations: Status, Components (Activation first), Network.
function activationSuccess (status, mode, details) {
  return JSON.stringify({ Status: status, Components: successComponents({ Result: 'Success', Mode: mode, Details: details }), Network: 'Wired Network Configured' })
}

// Re-activations: Status, Network, Components with WiredNetwork first (trace 02, 11).
function reactivationSuccess (status, mode, details) {
  const c = successComponents({ Result: 'Success', Mode: mode, Details: details })
  return JSON.stringify({
    Status: status,
    Network: 'Wired Network Configured',
    Components: { WiredNetwork: c.WiredNetwork, WirelessNetwork: c.WirelessNetwork, TLS: c.TLS, CIRAProxy: c.CIRAProxy, CIRAConnection: c.CIRAConnection, Activation: c.Activation }
  })
}

function flowError (status) {
  return JSON.stringify({ Status: status, Components: Object.assign({ Activation: { Result: 'Failure', Details: status } }, NA) })
}

class FlowError extends Error {
  constructor (message, json = true) { super(message); this.json = json }
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
    head += `Host: ${this.payload.uuid}:16992\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`
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
    for (;;) {
      const raw = await this.exchange(this.rawRequest(xml, this.authorization()))
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
      this.user = p.username
      this.pass = p.password
      const gs = this.body(await this.call(this.amt.GeneralSettings.Get())).AMT_GeneralSettings
      this.realm = this.checkRealm(gs)
      this.generalSettings = gs
      const netPw = md5(`admin:${this.realm}:${profile.password}`)
      if (profile.mode === 'ccm') {
        const r = this.body(await this.call(this.ips.HostBasedSetupService.Setup(2, netPw)))
        if (r.Setup_OUTPUT.ReturnValue !== 0) throw new FlowError('Failed to activate in client control mode.')
      } else {
        const hbs = this.body(await this.call(this.ips.HostBasedSetupService.Get())).IPS_HostBasedSetupService
        await this.addChain()
        const { mcNonce, sig } = this.sign(hbs.ConfigurationNonce)
        const r = this.body(await this.call(this.ips.HostBasedSetupService.AdminSetup(2, netPw, mcNonce, 2, sig)))
        if (r.AdminSetup_OUTPUT.ReturnValue !== 0) throw new FlowError('Failed to activate in admin control mode.')
      }
      this.progress('Activation completed')
      await new Promise((resolve) => setTimeout(resolve, delayMs))
      this.user = 'admin'
      this.pass = profile.password
      stored[p.uuid] = profile.password
      if (profile.mode === 'acm') await this.setMebx(profile)
      await this.configure(profile)
      if (profile.mode === 'ccm') return this.final(true, activationSuccess('Client control mode.', 'CCM', 'Client control mode'))
      return this.final(true, activationSuccess('Activated to admin control mode.', 'ACM', 'Activated to admin control mode'))
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
    if (profile.mode === 'acm' && mode === 1) return this.final(true, activationSuccess('Upgraded to admin control mode.', 'ACM', 'Upgraded to admin control mode'))
    if (profile.mode === 'acm') return this.final(true, reactivationSuccess('already enabled in admin mode.', 'ACM', 'Already enabled in admin mode'))
    return this.final(true, reactivationSuccess('already enabled in client mode.', 'CCM', 'Already enabled in client mode'))
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
      for (const s of w) if (s.Priority) await this.call(this.cim.WiFiEndpointSettings.Delete({ InstanceID: s.InstanceID }))
    }
    const proxies = asArray((await this.enumPull(this.ips.HTTPProxyAccessPoint)).IPS_HTTPProxyAccessPoint)
    for (const ap of proxies) await this.call(this.ips.HTTPProxyAccessPoint.Delete({ Name: ap.Name }))
    for (const rule of ['User Initiated', 'Alert', 'Periodic']) {
      await this.call(this.amt.RemoteAccessPolicyRule.Delete({ PolicyRuleName: rule }), { tolerate400: true })
    }
    const saps = asArray((await this.enumPull(this.amt.ManagementPresenceRemoteSAP)).AMT_ManagementPresenceRemoteSAP)
    for (const s of saps) await this.call(this.amt.ManagementPresenceRemoteSAP.Delete({ Name: s.Name }))
    const tls = asArray((await this.enumPull(this.amt.TLSSettingData)).AMT_TLSSettingData)
    if (tls.length < 2) throw new FlowError('Unknown error has occured')
    const pkc = asArray((await this.enumPull(this.amt.PublicKeyCertificate)).AMT_PublicKeyCertificate)
    for (const c of pkc) await this.call(this.amt.PublicKeyCertificate.Delete({ InstanceID: c.InstanceID }))
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
      await this.call(this.ips.OptInService.Put(Object.assign({}, optIn, { OptInRequired: want })))
    }
    this.progress(`AMT features completed: KVM, SOL, IDER (User Consent: ${profile.userConsent || 'All'})`)
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
    if (msg.method !== 'response') { log({ dir: 'client->rps', json: { method: msg.method } }); return }
    const raw = Buffer.from(msg.payload || '', 'base64')
    log({ dir: 'client->rps', n: s.wsmanCount, json: { method: 'response' }, decoded_payload: raw.toString('latin1') })
    const p = s.pending
    s.pending = null
    if (p) p(raw)
  })
  ws.on('close', (code) => {
    log({ event: 'client closed', code, final_sent: s.done })
    if (once) setTimeout(() => process.exit(0), 50)
  })
  ws.on('error', (e) => log({ event: 'ws error', error: String(e) }))
})
server.listen(Number(port), host, () => {
  process.stdout.write(`listening ${server.address().port}\n`)
})
process.on('SIGTERM', () => process.exit(0))
