#!/usr/bin/env node
// An independent WS-MAN peer for amt-sim: Intel's @device-management-toolkit/wsman-messages
// builds every request, the HTTP and Digest layer copy what RPS puts on the wire
// (rps-protocol.md §2), and every answer is parsed with xml2js exactly as RPS parses it
// (prefixes stripped, numbers and booleans converted). The checks are the ones RPS makes
// (rps-protocol.md §3, §5, §9).
//
// Usage: node wsman_peer.js LMS_PORT STATE_FILE   (PEER_TRACE=1 to see the exchanges on stderr)
// Prints one line per check ("ok - …" or "FAIL - …") and exits 1 when any check failed.
//
// The run follows RPS's order: unauthenticated GeneralSettings Get (401), the pre-activation reads
// as the local system account, CCM Setup, then everything else as `admin` on the same nonce, and
// finally Unprovision, which leaves the simulator pre-provisioned again.

'use strict'

const net = require('net')
const crypto = require('crypto')
const fs = require('fs')
const path = require('path')
const xml2js = require('xml2js')
const { AMT, IPS, CIM } = require('@device-management-toolkit/wsman-messages')

const REQUEST_TIMEOUT_MS = 10000
// PEER_TRACE=1 writes every request and answer to stderr.
const TRACE = process.env.PEER_TRACE === '1'

// ---------------------------------------------------------------------------------------------
// Checks

let failures = 0
let passes = 0

function check (name, ok, detail) {
  if (ok) {
    passes++
    console.log(`ok - ${name}`)
  } else {
    failures++
    console.log(`FAIL - ${name}${detail !== undefined ? ': ' + detail : ''}`)
  }
  return ok
}

function show (v) {
  return JSON.stringify(v)
}

// ---------------------------------------------------------------------------------------------
// HTTP and Digest, the RPS way (rps-protocol.md §2, §3 "Authentication")

const md5 = (s) => crypto.createHash('md5').update(s).digest('hex')

function cnonce () {
  // 5–7 lower-case letters/digits, new per request.
  const r = crypto.randomBytes(8)
  let s = ''
  for (let i = 0; i < 5 + (r[0] % 3); i++) s += (r[i + 1] % 36).toString(36)
  return s
}

class DigestSession {
  constructor (host, port, user, password) {
    this.host = host
    this.port = port
    this.user = user
    this.password = password
    this.realm = null
    this.nonce = null
    this.nc = 0
    this.unauthenticated = 0
  }

  // RPS switches user (LSA -> admin) without a new challenge: same realm, same nonce, nc continues.
  setCredentials (user, password) {
    this.user = user
    this.password = password
  }

  authorization () {
    if (this.nonce === null) return null
    this.nc++
    const nc = this.nc.toString(16).padStart(8, '0')
    const cn = cnonce()
    const ha1 = md5(`${this.user}:${this.realm}:${this.password}`)
    const ha2 = md5('POST:/wsman')
    const response = md5(`${ha1}:${this.nonce}:${nc}:${cn}:auth:${ha2}`)
    return `Digest username="${this.user}",realm="${this.realm}",nonce="${this.nonce}",uri="/wsman",` +
      `qop="auth",response="${response}",nc="${nc}",cnonce="${cn}"`
  }

  rawRequest (xml) {
    const auth = this.authorization()
    const body = Buffer.from(xml, 'utf8')
    const head = (auth !== null ? `Authorization: ${auth}\r\n` : '') +
      `Host: ${this.host}:16992\r\n` +
      'Transfer-Encoding: chunked\r\n' +
      'Connection: close\r\n\r\n'
    const bytes = Buffer.concat([
      Buffer.from(`POST /wsman HTTP/1.1\r\n${head}${body.length.toString(16).toUpperCase()}\r\n`, 'latin1'),
      body,
      Buffer.from('\r\n0\r\n\r\n', 'latin1')
    ])
    return sendOnce(this.port, bytes).then((res) => {
      if (TRACE) process.stderr.write(`>>> ${bytes.toString('utf8')}\n<<< ${res.status} ${res.body}\n\n`)
      return res
    })
  }

  // One WS-MAN exchange. The session's first request goes without Authorization; its 401 is
  // answered by taking the challenge and resending, as RPS does. A later 401 is returned as is.
  async post (xml) {
    const res = await this.rawRequest(xml)
    if (res.status !== 401 || this.nonce !== null) return res
    const header = res.headers['www-authenticate'] || ''
    const challenge = parseChallenge(header)
    if (challenge === null) throw new Error(`401 without a Digest challenge: ${show(header)}`)
    this.unauthenticated++
    this.realm = challenge.realm
    this.nonce = challenge.nonce
    this.challengeHeader = header
    return await this.rawRequest(xml)
  }
}

function parseChallenge (value) {
  if (!/^Digest /.test(value)) return null
  const out = {}
  for (const m of value.slice(7).matchAll(/\s*([a-zA-Z]+)="([^"]*)"/g)) out[m[1].toLowerCase()] = m[2]
  return out.realm !== undefined && out.nonce !== undefined ? out : null
}

function sendOnce (port, bytes) {
  return new Promise((resolve, reject) => {
    const chunks = []
    const sock = net.connect({ host: '127.0.0.1', port }, () => sock.write(bytes))
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new Error(`no complete answer within ${REQUEST_TIMEOUT_MS} ms`))
    }, REQUEST_TIMEOUT_MS)
    sock.on('data', (d) => chunks.push(d))
    sock.on('error', (e) => { clearTimeout(timer); reject(e) })
    sock.on('close', () => {
      clearTimeout(timer)
      try {
        resolve(parseResponse(Buffer.concat(chunks)))
      } catch (e) {
        reject(e)
      }
    })
  })
}

function parseResponse (buf) {
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0) throw new Error(`incomplete HTTP answer (${buf.length} bytes)`)
  const lines = buf.slice(0, end).toString('latin1').split('\r\n')
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0])
  if (!m) throw new Error(`bad status line ${show(lines[0])}`)
  const headers = {}
  const headerNames = []
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':')
    const name = l.slice(0, i).trim()
    headerNames.push(name)
    headers[name.toLowerCase()] = l.slice(i + 1).trim()
  }
  const rest = buf.slice(end + 4)
  const chunked = /chunked/i.test(headers['transfer-encoding'] || '')
  let body
  if (chunked) {
    body = dechunk(rest)
  } else if (headers['content-length'] !== undefined) {
    body = rest.slice(0, Number(headers['content-length']))
  } else {
    body = rest
  }
  return { status: Number(m[1]), headers, headerNames, chunked, body: body.toString('utf8') }
}

// Strict de-chunking, as RPS applies it to every 200 on the non-TLS path.
function dechunk (buf) {
  const parts = []
  let at = 0
  for (;;) {
    const eol = buf.indexOf('\r\n', at)
    if (eol < 0) throw new Error('chunk size line not terminated')
    const sizeText = buf.slice(at, eol).toString('latin1').split(';')[0]
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`bad chunk size ${show(sizeText)}`)
    const size = parseInt(sizeText, 16)
    at = eol + 2
    if (size === 0) break
    if (at + size + 2 > buf.length) throw new Error('truncated chunk')
    parts.push(buf.slice(at, at + size))
    at += size
    if (buf.slice(at, at + 2).toString('latin1') !== '\r\n') throw new Error('chunk not followed by CRLF')
    at += 2
  }
  return Buffer.concat(parts)
}

// ---------------------------------------------------------------------------------------------
// XML, the RPS way: RPS's HttpHandler.parseXML

const parser = new xml2js.Parser({
  ignoreAttrs: true,
  mergeAttrs: false,
  explicitArray: false,
  tagNameProcessors: [xml2js.processors.stripPrefix],
  valueProcessors: [xml2js.processors.parseNumbers, xml2js.processors.parseBooleans]
})

async function parseXml (text) {
  return await parser.parseStringPromise(text)
}

const asArray = (v) => (v === undefined || v === '' ? [] : Array.isArray(v) ? v : [v])
const messageIdOf = (xml) => (/<a:MessageID>([^<]*)<\/a:MessageID>/.exec(xml) || [])[1]

// ---------------------------------------------------------------------------------------------
// One WS-MAN call: transport checks every 200 must pass, then the parsed Envelope.

async function call (session, label, xml) {
  const res = await session.post(xml)
  if (res.status !== 200) {
    let reason = ''
    try {
      const f = await parseXml(res.body)
      reason = show(f.Envelope.Body.Fault)
    } catch (_) {
      reason = res.body.slice(0, 200)
    }
    throw new Error(`${label}: HTTP ${res.status} ${reason}`)
  }
  if (!res.chunked || res.headers['content-length'] !== undefined) {
    throw new Error(`${label}: a 200 must be chunked without Content-Length (rps-protocol.md §3)`)
  }
  let doc
  try {
    doc = await parseXml(res.body)
  } catch (e) {
    throw new Error(`${label}: xml2js cannot parse the answer: ${e.message}`)
  }
  const env = doc && doc.Envelope
  if (!env || env.Body === undefined || env.Header === undefined) {
    throw new Error(`${label}: no Envelope/Header/Body after stripping prefixes: ${show(doc).slice(0, 200)}`)
  }
  const sent = messageIdOf(xml)
  if (String(env.Header.RelatesTo) !== sent) {
    throw new Error(`${label}: RelatesTo ${show(env.Header.RelatesTo)} does not echo MessageID ${sent}`)
  }
  return env
}

// Enumerate then Pull with the returned context; answers the PullResponse.
async function enumPull (session, cls) {
  const e = await call(session, `${cls.className} Enumerate`, cls.Enumerate())
  const ctx = e.Body.EnumerateResponse && e.Body.EnumerateResponse.EnumerationContext
  if (ctx === undefined || ctx === '') throw new Error(`${cls.className} Enumerate: no EnumerationContext`)
  const p = await call(session, `${cls.className} Pull`, cls.Pull(String(ctx)))
  const pr = p.Body.PullResponse
  if (pr === undefined) throw new Error(`${cls.className} Pull: no PullResponse`)
  return pr
}

async function step (name, fn) {
  try {
    await fn()
  } catch (e) {
    check(name, false, e.message)
  }
}

// ---------------------------------------------------------------------------------------------

async function main () {
  const [portArg, statePath] = process.argv.slice(2)
  if (!portArg || !statePath) {
    console.error('usage: node wsman_peer.js LMS_PORT STATE_FILE')
    process.exit(2)
  }
  const port = Number(portArg)
  const readState = () => JSON.parse(fs.readFileSync(statePath, 'utf8'))
  const state0 = readState()
  const realm = state0.digest_realm
  check('state file names a realm and an LSA password', !!realm && !!state0.lsa_password)
  check('device starts pre-provisioned', state0.control_mode === 0, `control_mode ${state0.control_mode}`)

  const amt = new AMT.Messages()
  const ips = new IPS.Messages()
  const cim = new CIM.Messages()
  const s = new DigestSession(state0.uuid, port, '$$OsAdmin', state0.lsa_password)
  const adminPassword = 'P@ssw0rd-peer1'
  const adminPassword2 = 'P@ssw0rd-peer2'

  // --- Pre-activation, as the local system account (rps-protocol.md §5.1 step 1) ---------------

  let generalSettings
  await step('AMT_GeneralSettings Get', async () => {
    const e = await call(s, 'AMT_GeneralSettings Get', amt.GeneralSettings.Get())
    check('first request answered 401 with a Digest challenge', s.unauthenticated === 1)
    check('challenge is realm, nonce, stale, qop=auth', /^Digest realm="[^"]+", nonce="[^"]+",stale="false",qop="auth"$/.test(s.challengeHeader),
      show(s.challengeHeader))
    check('challenge realm matches ^Digest:[0-9A-Fa-f]{32}$', /^Digest:[0-9A-Fa-f]{32}$/.test(s.realm), s.realm)
    const gs = e.Body.AMT_GeneralSettings
    generalSettings = gs
    check('GeneralSettings parses under AMT_GeneralSettings', gs !== undefined, show(Object.keys(e.Body)))
    check('DigestRealm matches the challenge realm', gs.DigestRealm === s.realm, `${gs.DigestRealm} vs ${s.realm}`)
    check('DigestRealm matches the state file', gs.DigestRealm === realm)
    check('AMTNetworkEnabled is numeric 1', gs.AMTNetworkEnabled === 1, show(gs.AMTNetworkEnabled))
    check('SharedFQDN and RmcpPingResponseEnabled are booleans', gs.SharedFQDN === true && gs.RmcpPingResponseEnabled === true,
      show([gs.SharedFQDN, gs.RmcpPingResponseEnabled]))
    check('HostName is present', 'HostName' in gs)
  })

  await step('IPS_HostBasedSetupService Get', async () => {
    const e = await call(s, 'IPS_HostBasedSetupService Get', ips.HostBasedSetupService.Get())
    const h = e.Body.IPS_HostBasedSetupService
    const nonce = Buffer.from(String(h.ConfigurationNonce), 'base64')
    check('ConfigurationNonce is base64 of 20 bytes', nonce.length === 20, show(h.ConfigurationNonce))
    check('AllowedControlModes are 2 and 1 before activation', show(asArray(h.AllowedControlModes)) === '[2,1]',
      show(h.AllowedControlModes))
    check('CurrentControlMode is 0', h.CurrentControlMode === 0, show(h.CurrentControlMode))
  })

  await step('AMT_SetupAndConfigurationService Get', async () => {
    const e = await call(s, 'AMT_SetupAndConfigurationService Get', amt.SetupAndConfigurationService.Get())
    const sc = e.Body.AMT_SetupAndConfigurationService
    check('ProvisioningState is numeric 0', sc.ProvisioningState === 0, show(sc.ProvisioningState))
  })

  await step('AMT_SetupAndConfigurationService GetUuid', async () => {
    const e = await call(s, 'GetUuid', amt.SetupAndConfigurationService.GetUuid())
    const out = e.Body.GetUuid_OUTPUT
    check('GetUuid ReturnValue 0', out.ReturnValue === 0, show(out.ReturnValue))
    check('GetUuid UUID is base64 of 16 bytes', Buffer.from(String(out.UUID), 'base64').length === 16, show(out.UUID))
  })

  // --- CCM activation (§5.1 step 2); RPS then switches to admin on the same nonce ----------------

  await step('IPS_HostBasedSetupService Setup', async () => {
    const pw = md5(`admin:${realm}:${adminPassword}`)
    const e = await call(s, 'Setup', ips.HostBasedSetupService.Setup(2, pw))
    check('Setup_OUTPUT ReturnValue 0', e.Body.Setup_OUTPUT.ReturnValue === 0, show(e.Body.Setup_OUTPUT))
    check('state file shows CCM after Setup', readState().control_mode === 1, `control_mode ${readState().control_mode}`)
  })
  s.setCredentials('admin', adminPassword)
  const ncBefore = s.nc

  await step('admin on the same nonce', async () => {
    const e = await call(s, 'AMT_GeneralSettings Get (admin)', amt.GeneralSettings.Get())
    check('admin accepted on the LSA session nonce without a new challenge', s.unauthenticated === 1 && s.nc === ncBefore + 1,
      `challenges ${s.unauthenticated}, nc ${s.nc}`)
    check('DigestRealm unchanged by activation', e.Body.AMT_GeneralSettings.DigestRealm === realm)
  })

  await step('LSA refused after activation', async () => {
    const lsa = new DigestSession(state0.uuid, port, '$$OsAdmin', state0.lsa_password)
    const res = await lsa.post(amt.GeneralSettings.Get())
    check('the LSA user is refused (401) once activated', res.status === 401, `HTTP ${res.status}`)
  })

  // --- Clearing previous configuration (§5.1 step 4) ----------------------------------------

  let ports = []
  await step('AMT_EthernetPortSettings Enumerate/Pull', async () => {
    const pr = await enumPull(s, amt.EthernetPortSettings)
    ports = asArray(pr.Items && pr.Items.AMT_EthernetPortSettings)
    check('EthernetPortSettings: two ports', ports.length === 2, show(ports.length))
    check('port 0 is "…Settings 0", port 1 "…Settings 1"',
      ports.length === 2 && ports[0].InstanceID.includes('Settings 0') && ports[1].InstanceID.includes('Settings 1'),
      show(ports.map((p) => p.InstanceID)))
    check('ports carry MACAddress and IPAddress', ports.every((p) => typeof p.MACAddress === 'string' && 'IPAddress' in p))
    check('Pull ends the sequence', 'EndOfSequence' in pr)
  })

  await step('IPS_IEEE8021xSettings Get', async () => {
    const e = await call(s, 'IPS_IEEE8021xSettings Get', ips.IEEE8021xSettings.Get())
    const v = e.Body.IPS_IEEE8021xSettings
    check('IEEE8021xSettings Enabled is numeric and not 2|6 (disabled)', v.Enabled === 3, show(v.Enabled))
    // RPS Puts back the instance it read (with Enabled=3) when 802.1x is on: the firmware's fields.
    check('IEEE8021xSettings carries AvailableInS0 and PxeTimeout', typeof v.AvailableInS0 === 'boolean' &&
      typeof v.PxeTimeout === 'number', show(v))
  })

  const empties = [
    [cim.WiFiEndpointSettings, 'CIM_WiFiEndpointSettings'],
    [ips.HTTPProxyAccessPoint, 'IPS_HTTPProxyAccessPoint'],
    [amt.ManagementPresenceRemoteSAP, 'AMT_ManagementPresenceRemoteSAP'],
    [amt.PublicKeyCertificate, 'AMT_PublicKeyCertificate'],
    [amt.PublicPrivateKeyPair, 'AMT_PublicPrivateKeyPair'],
    [amt.TLSCredentialContext, 'AMT_TLSCredentialContext']
  ]
  for (const [cls, name] of empties) {
    await step(`${name} Enumerate/Pull`, async () => {
      const pr = await enumPull(s, cls)
      check(`${name}: <Items> present though empty`, 'Items' in pr, show(pr))
      check(`${name}: no instances`, asArray(pr.Items && pr.Items[name]).length === 0, show(pr.Items))
      check(`${name}: EndOfSequence`, 'EndOfSequence' in pr)
    })
  }

  await step('AMT_TLSSettingData Enumerate/Pull', async () => {
    const pr = await enumPull(s, amt.TLSSettingData)
    const items = pr.Items && pr.Items.AMT_TLSSettingData
    check('TLSSettingData: two items (RPS indexes [0] and [1])', Array.isArray(items) && items.length === 2, show(items))
    if (Array.isArray(items) && items.length === 2) {
      check('TLSSettingData: 802.3 first, LMS second',
        items[0].ElementName.includes('802.3') && items[1].ElementName.includes('LMS'),
        show(items.map((i) => i.ElementName)))
      check('TLSSettingData: Enabled is boolean false (TLS not enforced)',
        items[0].Enabled === false && items[1].Enabled === false, show(items.map((i) => i.Enabled)))
    }
  })

  await step('AMT_EnvironmentDetectionSettingData Get', async () => {
    const e = await call(s, 'EnvironmentDetectionSettingData Get', amt.EnvironmentDetectionSettingData.Get())
    const v = e.Body.AMT_EnvironmentDetectionSettingData
    check('EnvironmentDetectionSettingData parses, no DetectionStrings', v !== undefined && v.DetectionStrings === undefined, show(v))
  })

  // --- Network (§5.1 step 5) -----------------------------------------------------------------

  await step('AMT_GeneralSettings Put', async () => {
    const put = { ...generalSettings, SharedFQDN: true, AMTNetworkEnabled: 1, RmcpPingResponseEnabled: true, HostName: 'peer-host' }
    const e = await call(s, 'AMT_GeneralSettings Put', amt.GeneralSettings.Put(put))
    const gs = e.Body.AMT_GeneralSettings
    check('GeneralSettings PutResponse echoes HostName', gs.HostName === 'peer-host', show(gs.HostName))
    check('GeneralSettings PutResponse keeps DigestRealm', gs.DigestRealm === realm)
    const g = (await call(s, 'AMT_GeneralSettings Get', amt.GeneralSettings.Get())).Body.AMT_GeneralSettings
    check('GeneralSettings Get shows the new HostName', g.HostName === 'peer-host', show(g.HostName))
  })

  await step('AMT_EthernetPortSettings Put', async () => {
    const wired = ports.find((p) => String(p.InstanceID).includes('Settings 0'))
    if (!wired) throw new Error('no wired port to put')
    // A static-IP profile with IP sync (§5.1 step 5), then RPS's DHCP default.
    for (const want of [
      { DHCPEnabled: false, IpSyncEnabled: true, SharedStaticIp: true },
      { DHCPEnabled: true, IpSyncEnabled: true, SharedStaticIp: false }
    ]) {
      const put = { ...wired, ...want }
      const e = await call(s, 'AMT_EthernetPortSettings Put', amt.EthernetPortSettings.Put(put))
      const got = e.Body.AMT_EthernetPortSettings
      check(`EthernetPortSettings PutResponse echoes ${show(want)}`,
        got !== undefined && got.DHCPEnabled === want.DHCPEnabled && got.IpSyncEnabled === want.IpSyncEnabled &&
        got.SharedStaticIp === want.SharedStaticIp,
        got && show({ DHCPEnabled: got.DHCPEnabled, IpSyncEnabled: got.IpSyncEnabled, SharedStaticIp: got.SharedStaticIp }))
    }
  })

  // --- Features (§5.1 step 6) ----------------------------------------------------------------

  await step('AMT_RedirectionService Get/RequestStateChange/Put', async () => {
    const r = (await call(s, 'RedirectionService Get', amt.RedirectionService.Get())).Body.AMT_RedirectionService
    check('RedirectionService EnabledState numeric 32768', r.EnabledState === 32768, show(r.EnabledState))
    check('RedirectionService ListenerEnabled boolean false', r.ListenerEnabled === false, show(r.ListenerEnabled))
    const rsc = await call(s, 'RedirectionService RequestStateChange', amt.RedirectionService.RequestStateChange(32771))
    check('RedirectionService RequestStateChange ReturnValue 0', rsc.Body.RequestStateChange_OUTPUT.ReturnValue === 0,
      show(rsc.Body.RequestStateChange_OUTPUT))
    const put = { ...r, EnabledState: 32771, ListenerEnabled: true }
    const p = (await call(s, 'RedirectionService Put', amt.RedirectionService.Put(put))).Body.AMT_RedirectionService
    check('RedirectionService PutResponse echoes EnabledState and ListenerEnabled',
      p.EnabledState === 32771 && p.ListenerEnabled === true, show(p))
    const g = (await call(s, 'RedirectionService Get', amt.RedirectionService.Get())).Body.AMT_RedirectionService
    check('RedirectionService Get shows IDER+SOL and the listener', g.EnabledState === 32771 && g.ListenerEnabled === true, show(g))
  })

  await step('CIM_KVMRedirectionSAP Get/RequestStateChange', async () => {
    const k = (await call(s, 'KVMRedirectionSAP Get', cim.KVMRedirectionSAP.Get())).Body.CIM_KVMRedirectionSAP
    check('KVMRedirectionSAP EnabledState numeric 3 (disabled)', k.EnabledState === 3, show(k.EnabledState))
    check('KVMRedirectionSAP KVMProtocol is numeric', typeof k.KVMProtocol === 'number', show(k))
    const rsc = await call(s, 'KVMRedirectionSAP RequestStateChange', cim.KVMRedirectionSAP.RequestStateChange(2))
    check('KVMRedirectionSAP RequestStateChange ReturnValue 0', rsc.Body.RequestStateChange_OUTPUT.ReturnValue === 0)
    const g = (await call(s, 'KVMRedirectionSAP Get', cim.KVMRedirectionSAP.Get())).Body.CIM_KVMRedirectionSAP
    check('KVMRedirectionSAP Get shows 2 (enabled)', g.EnabledState === 2, show(g.EnabledState))
  })

  await step('IPS_OptInService Get/Put', async () => {
    const o = (await call(s, 'OptInService Get', ips.OptInService.Get())).Body.IPS_OptInService
    check('OptInRequired numeric 4294967295 (all)', o.OptInRequired === 4294967295, show(o.OptInRequired))
    // In client control mode the firmware keeps user consent at "all" (RPS allows only "All" in
    // CCM profiles): a Put lowering it is a fault, and nothing changes.
    const refused = await s.post(ips.OptInService.Put({ IPS_OptInService: { ...o, OptInRequired: 0 } }))
    const fault = refused.status === 400 ? (await parseXml(refused.body)).Envelope.Body.Fault : undefined
    check('OptInService Put of 0 in CCM is refused with a SOAP fault', fault !== undefined &&
      String(fault.Code.Subcode.Value).endsWith('AccessDenied'), `HTTP ${refused.status} ${show(fault)}`)
    const bad = await s.post(ips.OptInService.Put({ IPS_OptInService: { ...o, OptInRequired: 7 } }))
    check('OptInService Put of 7 (no such policy) is refused', bad.status === 400, `HTTP ${bad.status}`)
    const p = (await call(s, 'OptInService Put', ips.OptInService.Put({ IPS_OptInService: { ...o, OptInRequired: 4294967295 } }))).Body.IPS_OptInService
    check('OptInService PutResponse echoes OptInRequired 4294967295', p !== undefined && p.OptInRequired === 4294967295, show(p))
    const g = (await call(s, 'OptInService Get', ips.OptInService.Get())).Body.IPS_OptInService
    check('OptInService Get still shows 4294967295', g.OptInRequired === 4294967295, show(g.OptInRequired))
  })

  await step('IPS_KVMRedirectionSettingData Get/Put', async () => {
    const k = (await call(s, 'KVMRedirectionSettingData Get', ips.KVMRedirectionSettingData.Get())).Body.IPS_KVMRedirectionSettingData
    check('KVMRedirectionSettingData EnabledByMEBx boolean true', k !== undefined && k.EnabledByMEBx === true, show(k))
    check('KVMRedirectionSettingData SessionTimeout numeric', typeof k.SessionTimeout === 'number', show(k))
    const p = (await call(s, 'KVMRedirectionSettingData Put', ips.KVMRedirectionSettingData.Put({ ...k, Is5900PortEnabled: true }))).Body.IPS_KVMRedirectionSettingData
    check('KVMRedirectionSettingData PutResponse echoes Is5900PortEnabled', p !== undefined && p.Is5900PortEnabled === true, show(p))
    const ro = await s.post(ips.KVMRedirectionSettingData.Put({ ...k, EnabledByMEBx: false }))
    check('KVMRedirectionSettingData EnabledByMEBx is read-only (fault)', ro.status === 400, `HTTP ${ro.status}`)
  })

  await step('IPS_HTTPProxyService AddProxyAccessPoint / IPS_HTTPProxyAccessPoint', async () => {
    const params = { AccessInfo: 'proxy.example.com', InfoFormat: 201, Port: 3128, NetworkDnsSuffix: 'example.com' }
    const a = (await call(s, 'AddProxyAccessPoint', ips.HTTPProxyService.AddProxyAccessPoint(params))).Body.AddProxyAccessPoint_OUTPUT
    check('AddProxyAccessPoint ReturnValue 0', a.ReturnValue === 0, show(a))
    const sel = a.ProxyAccessPoint && a.ProxyAccessPoint.ReferenceParameters && a.ProxyAccessPoint.ReferenceParameters.SelectorSet
    check('AddProxyAccessPoint answers the new access point reference', sel !== undefined && show(sel).includes('HTTP Proxy Access Point'), show(a.ProxyAccessPoint))
    const d = (await call(s, 'AddProxyAccessPoint (duplicate)', ips.HTTPProxyService.AddProxyAccessPoint(params))).Body.AddProxyAccessPoint_OUTPUT
    check('a duplicate AddProxyAccessPoint answers 2058 (the fixture)', d.ReturnValue === 2058, show(d))
    const pr = await enumPull(s, ips.HTTPProxyAccessPoint)
    const aps = asArray(pr.Items && pr.Items.IPS_HTTPProxyAccessPoint)
    check('HTTPProxyAccessPoint: one access point with its fields', aps.length === 1 && aps[0].AccessInfo === 'proxy.example.com' &&
      aps[0].Port === 3128 && aps[0].InfoFormat === 201, show(aps))
    if (aps.length === 1) {
      // wsman-messages writes a selector's value only in the { name, value } form ({ Name: x }
      // gives an empty selector).
      await call(s, 'HTTPProxyAccessPoint Delete', ips.HTTPProxyAccessPoint.Delete({ name: 'Name', value: aps[0].Name }))
      const after = await enumPull(s, ips.HTTPProxyAccessPoint)
      check('HTTPProxyAccessPoint Delete by Name (as RPS does) removes it', asArray(after.Items && after.Items.IPS_HTTPProxyAccessPoint).length === 0)
    }
  })

  // --- The certificate store and TLS (configure tls; RPS's TLS flow, rps-protocol.md §5.6) ----
  // A certificate for AMT's own key needs an X.509 builder Node lacks: the RPS peer
  // (tests/rps_peer) does that part with node-forge. Here every request shape is checked, with
  // the firmware's answers to the cases it refuses.

  await step('AMT_PublicKeyManagementService and AMT_PublicPrivateKeyPair', async () => {
    const pkm = amt.PublicKeyManagementService
    const g = (await call(s, 'GenerateKeyPair', pkm.GenerateKeyPair({ KeyAlgorithm: 0, KeyLength: 2048 }))).Body.GenerateKeyPair_OUTPUT
    check('GenerateKeyPair ReturnValue 0', g.ReturnValue === 0, show(g))
    // This parser drops attributes (RPS keeps them and reads Selector._): the selector is its text.
    const selText = (epr) => {
      const x = epr && epr.ReferenceParameters && epr.ReferenceParameters.SelectorSet && epr.ReferenceParameters.SelectorSet.Selector
      return x !== null && typeof x === 'object' ? x._ : x
    }
    const handle = selText(g.KeyPair)
    check('GenerateKeyPair answers the key pair reference (ReferenceParameters/SelectorSet/Selector)', /^Intel\(r\) AMT Key: Handle: \d+$/.test(String(handle)), show(g.KeyPair))
    const bad = (await call(s, 'GenerateKeyPair 4096', pkm.GenerateKeyPair({ KeyAlgorithm: 0, KeyLength: 4096 }))).Body.GenerateKeyPair_OUTPUT
    check('GenerateKeyPair of an unsupported length answers 2062 (INVALID_KEY)', bad.ReturnValue === 2062, show(bad))
    const keys = asArray((await enumPull(s, amt.PublicPrivateKeyPair)).Items.AMT_PublicPrivateKeyPair)
    const k = keys.find((x) => x.InstanceID === handle)
    check('PublicPrivateKeyPair lists the new key pair', k !== undefined, show(keys))
    if (k) {
      const pub = crypto.createPublicKey({ key: Buffer.from(String(k.DERKey), 'base64'), format: 'der', type: 'pkcs1' })
      check('DERKey is a PKCS#1 RSA-2048 public key (as RPS and rpc-go parse it)', pub.asymmetricKeyDetails.modulusLength === 2048, String(pub.asymmetricKeyDetails.modulusLength))
    }
    const ca = fs.readFileSync(path.join(__dirname, '../fixtures/tls-ca/rsa-ca.pem'), 'utf8')
    const der = (pem) => Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64').toString('base64')
    const r = (await call(s, 'AddTrustedRootCertificate', pkm.AddTrustedRootCertificate({ CertificateBlob: der(ca) }))).Body.AddTrustedRootCertificate_OUTPUT
    check('AddTrustedRootCertificate ReturnValue 0', r.ReturnValue === 0, show(r))
    const rootHandle = selText(r.CreatedCertificate)
    const dup = (await call(s, 'AddTrustedRootCertificate (again)', pkm.AddTrustedRootCertificate({ CertificateBlob: der(ca) }))).Body.AddTrustedRootCertificate_OUTPUT
    check('the same root again answers 2058 (DUPLICATE)', dup.ReturnValue === 2058, show(dup))
    const leaf = fs.readFileSync(path.join(__dirname, '../fixtures/tls-ca/not-a-ca.pem'), 'utf8')
    const nk = (await call(s, 'AddCertificate (no key in AMT)', pkm.AddCertificate({ CertificateBlob: der(leaf) }))).Body.AddCertificate_OUTPUT
    check('AddCertificate for a key AMT does not hold answers 2060 (PKI_MISSING_KEYS)', nk.ReturnValue === 2060, show(nk))
    const nr = (await call(s, 'AddTrustedRootCertificate (not a CA)', pkm.AddTrustedRootCertificate({ CertificateBlob: der(leaf) }))).Body.AddTrustedRootCertificate_OUTPUT
    check('a trusted root that is no CA answers 2063 (INVALID_CERT)', nr.ReturnValue === 2063, show(nr))
    const certs = asArray((await enumPull(s, amt.PublicKeyCertificate)).Items.AMT_PublicKeyCertificate)
    check('PublicKeyCertificate lists the root with TrustedRootCertficate true',
      certs.length === 1 && certs[0].TrustedRootCertficate === true && certs[0].InstanceID === rootHandle, show(certs))
    const ctx = await s.post(amt.TLSCredentialContext.Create(rootHandle))
    check('TLSCredentialContext Create of a trusted root is refused (a fault: AMT holds no key for it)', ctx.status === 400, `HTTP ${ctx.status}`)
    const items = asArray((await enumPull(s, amt.TLSSettingData)).Items.AMT_TLSSettingData)
    const put = await s.post(amt.TLSSettingData.Put({ ...items[1], Enabled: true }))
    check('TLSSettingData Put Enabled without a bound certificate is refused', put.status === 400, `HTTP ${put.status}`)
    // wsman-messages' Put rewrites the object it is given (prefixed keys): hand it a copy.
    const same = await call(s, 'TLSSettingData Put (unchanged)', amt.TLSSettingData.Put({ ...items[1] }))
    check('TLSSettingData PutResponse echoes the LMS instance', same.Body.AMT_TLSSettingData.InstanceID === items[1].InstanceID,
      `${show(same.Body.AMT_TLSSettingData.InstanceID)} vs ${show(items[1].InstanceID)}`)
    await call(s, 'PublicPrivateKeyPair Delete', amt.PublicPrivateKeyPair.Delete({ name: 'InstanceID', value: handle }))
    await call(s, 'PublicKeyCertificate Delete', amt.PublicKeyCertificate.Delete({ name: 'InstanceID', value: rootHandle }))
    const left = asArray((await enumPull(s, amt.PublicPrivateKeyPair)).Items.AMT_PublicPrivateKeyPair)
    check('Delete by InstanceID (as RPS clears them) removes the key pair', !left.some((x) => x.InstanceID === handle), show(left))
  })

  // --- CIRA, as RPS's ciraConfiguration.ts drives it (§5.1 step 7, §5.6) ---------------------

  await step('CIRA: RemoteAccessPolicyRule Delete ×3 and an empty ManagementPresenceRemoteSAP', async () => {
    for (const name of ['User Initiated', 'Alert', 'Periodic']) {
      const r = await s.post(amt.RemoteAccessPolicyRule.Delete({ name: 'PolicyRuleName', value: name }))
      check(`RemoteAccessPolicyRule Delete '${name}' of an absent rule is a 400 DestinationUnreachable fault (§9; rpc-go tolerates that subcode)`,
        r.status === 400 && r.body.includes('DestinationUnreachable'), `HTTP ${r.status} ${r.body.slice(0, 120)}`)
    }
    const pr = await enumPull(s, amt.ManagementPresenceRemoteSAP)
    check('ManagementPresenceRemoteSAP: <Items> present and empty', 'Items' in pr && asArray(pr.Items && pr.Items.AMT_ManagementPresenceRemoteSAP).length === 0, show(pr))
  })

  await step('CIRA: AddTrustedRootCertificate, AddMpServer, AddRemoteAccessPolicyRule ×2', async () => {
    const pem = fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'cira', 'mps-root.pem'), 'utf8')
    const blob = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')
    const root = (await call(s, 'AddTrustedRootCertificate', amt.PublicKeyManagementService.AddTrustedRootCertificate({ CertificateBlob: blob }))).Body.AddTrustedRootCertificate_OUTPUT
    check('AddTrustedRootCertificate (MPS root) ReturnValue 0', root.ReturnValue === 0, show(root))
    const server = pem.length > 0 && fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'cira', 'mps-server.pem'), 'utf8')
    const leaf = (await call(s, 'AddTrustedRootCertificate (server certificate)', amt.PublicKeyManagementService.AddTrustedRootCertificate({
      CertificateBlob: server.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')
    }))).Body.AddTrustedRootCertificate_OUTPUT
    check('AddTrustedRootCertificate of a certificate that is no CA answers 2063 (INVALID_CERT)', leaf.ReturnValue === 2063, show(leaf))
    // RPS's AddMPS for a host name: InfoFormat 201 and no CommonName, which wsman-messages writes as <h:CN>undefined</h:CN>.
    const mps = { AccessInfo: 'mps.example.com', InfoFormat: 201, Port: 4433, AuthMethod: 2, Username: 'admin', Password: 'P@ssw0rd-mps1' }
    const add = (await call(s, 'AddMpServer', amt.RemoteAccessService.AddMPS(mps))).Body.AddMpServer_OUTPUT
    check('AddMpServer ReturnValue 0', add.ReturnValue === 0, show(add))
    const dup = (await call(s, 'AddMpServer (again)', amt.RemoteAccessService.AddMPS(mps))).Body.AddMpServer_OUTPUT
    check('AddMpServer of the same server again answers 2058 (DUPLICATE)', dup.ReturnValue === 2058, show(dup))
    const ip = (await call(s, 'AddMpServer (IPv4 format, host name)', amt.RemoteAccessService.AddMPS({ ...mps, InfoFormat: 3, CommonName: 'mps.example.com' }))).Body.AddMpServer_OUTPUT
    check('AddMpServer of a host name as InfoFormat 3 (IPv4) answers 36', ip.ReturnValue === 36, show(ip))
    const pr = await enumPull(s, amt.ManagementPresenceRemoteSAP)
    const saps = asArray(pr.Items && pr.Items.AMT_ManagementPresenceRemoteSAP)
    check('ManagementPresenceRemoteSAP: one server, its AccessInfo, Port and InfoFormat as numbers',
      saps.length === 1 && saps[0].AccessInfo === 'mps.example.com' && saps[0].Port === 4433 && saps[0].InfoFormat === 201, show(saps))
    // RPS reads the server's Name straight off the PullResponse (one item: an object, not an array).
    const selector = { name: 'Name', value: pr.Items.AMT_ManagementPresenceRemoteSAP.Name }
    const periodic = (await call(s, 'AddRemoteAccessPolicyRule (periodic)', amt.RemoteAccessService.AddRemoteAccessPolicyRule({ Trigger: 2, TunnelLifeTime: 0, ExtendedData: 'AAAAAAAAABk=' }, selector))).Body.AddRemoteAccessPolicyRule_OUTPUT
    check('AddRemoteAccessPolicyRule (periodic, 25 s) ReturnValue 0', periodic.ReturnValue === 0, show(periodic))
    const user = (await call(s, 'AddRemoteAccessPolicyRule (user initiated)', amt.RemoteAccessService.AddRemoteAccessPolicyRule({ Trigger: 0, TunnelLifeTime: 300, ExtendedData: '' }, selector))).Body.AddRemoteAccessPolicyRule_OUTPUT
    check('AddRemoteAccessPolicyRule (user initiated) ReturnValue 0', user.ReturnValue === 0, show(user))
    const again = (await call(s, 'AddRemoteAccessPolicyRule (periodic again)', amt.RemoteAccessService.AddRemoteAccessPolicyRule({ Trigger: 2, TunnelLifeTime: 0, ExtendedData: 'AAAAAAAAABk=' }, selector))).Body.AddRemoteAccessPolicyRule_OUTPUT
    check('a second periodic rule answers 2058 (DUPLICATE)', again.ReturnValue === 2058, show(again))
  })

  await step('CIRA: RemoteAccessPolicyAppliesToMPS Enumerate/Pull/Put, the RPS way', async () => {
    const pr = await enumPull(s, amt.RemoteAccessPolicyAppliesToMPS)
    const items = asArray(pr.Items && pr.Items.AMT_RemoteAccessPolicyAppliesToMPS)
    check('RemoteAccessPolicyAppliesToMPS: one association per rule', items.length === 2, show(items))
    check('associations reference the server and the rule with four selectors each',
      items.every((a) => asArray(a.ManagedElement.ReferenceParameters.SelectorSet.Selector).length === 4 &&
        asArray(a.PolicySet.ReferenceParameters.SelectorSet.Selector).length === 4), show(items))
    check('MpsType starts 0 (outside the enterprise)', items.every((a) => a.MpsType === 0), show(items.map((a) => a.MpsType)))
    for (const data of items) {
      // ciraConfiguration.ts: MpsType 2, OrderOfAccess 0, then its own header selectors in
      // place of </w:OperationTimeout> (its policy name lookup finds nothing: xml2js dropped
      // the selector names, so the name is "undefined").
      data.MpsType = 2
      data.OrderOfAccess = 0
      const policySelector = undefined
      const policyName = policySelector?._
      const customSelector = `</w:OperationTimeout><wsman:SelectorSet xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><wsman:Selector Name="ManagedElement"><EndpointReference xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing"><Address xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</Address><ReferenceParameters xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing"><ResourceURI xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">http://intel.com/wbem/wscim/1/amt-schema/1/AMT_ManagementPresenceRemoteSAP</ResourceURI><SelectorSet xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><Selector Name="CreationClassName">AMT_ManagementPresenceRemoteSAP</Selector><Selector Name="Name">Intel(r) AMT:Management Presence Server 0</Selector><Selector Name="SystemCreationClassName">CIM_ComputerSystem</Selector><Selector Name="SystemName">Intel(r) AMT</Selector></SelectorSet></ReferenceParameters></EndpointReference></wsman:Selector><wsman:Selector Name="PolicySet"><EndpointReference xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing"><Address xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</Address><ReferenceParameters xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing"><ResourceURI xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">http://intel.com/wbem/wscim/1/amt-schema/1/AMT_RemoteAccessPolicyRule</ResourceURI><SelectorSet xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><Selector Name="CreationClassName">AMT_RemoteAccessPolicyRule</Selector><Selector Name="PolicyRuleName">${policyName}</Selector><Selector Name="SystemCreationClassName">CIM_ComputerSystem</Selector><Selector Name="SystemName">Intel(r) AMT</Selector></SelectorSet></ReferenceParameters></EndpointReference></wsman:Selector></wsman:SelectorSet>`
      const xml = amt.RemoteAccessPolicyAppliesToMPS.Put(data).replace('</w:OperationTimeout>', customSelector)
      await call(s, 'RemoteAccessPolicyAppliesToMPS Put', xml)
    }
    const after = asArray((await enumPull(s, amt.RemoteAccessPolicyAppliesToMPS)).Items.AMT_RemoteAccessPolicyAppliesToMPS)
    check('both associations now MpsType 2 (both)', after.length === 2 && after.every((a) => a.MpsType === 2), show(after.map((a) => a.MpsType)))
  })

  await step('CIRA: UserInitiatedConnectionService and EnvironmentDetectionSettingData', async () => {
    const rsc = (await call(s, 'UserInitiatedConnectionService RequestStateChange', amt.UserInitiatedConnectionService.RequestStateChange(32771))).Body.RequestStateChange_OUTPUT
    check('UserInitiatedConnectionService RequestStateChange(32771) ReturnValue 0 (RPS\'s guard)', rsc && rsc.ReturnValue === 0, show(rsc))
    const env = (await call(s, 'EnvironmentDetectionSettingData Get', amt.EnvironmentDetectionSettingData.Get())).Body.AMT_EnvironmentDetectionSettingData
    // ciraConfiguration.ts: a random domain that never matches, so AMT always sees itself outside.
    const domain = `${crypto.randomUUID()}.com`
    env.DetectionStrings = [domain]
    const put = (await call(s, 'EnvironmentDetectionSettingData Put', amt.EnvironmentDetectionSettingData.Put(env))).Body.AMT_EnvironmentDetectionSettingData
    check('EnvironmentDetectionSettingData PutResponse echoes the detection domain', put && put.DetectionStrings === domain, show(put))
    const state = readState()
    const saps = state.instances.AMT_ManagementPresenceRemoteSAP || []
    check('state file holds the MPS', saps.length === 1, show(saps.length))
  })

  await step('CIRA: cleared again as RPS clears it at activation (rules, the server, the certificates)', async () => {
    for (const name of ['User Initiated', 'Alert', 'Periodic']) await s.post(amt.RemoteAccessPolicyRule.Delete({ name: 'PolicyRuleName', value: name }))
    const pr = await enumPull(s, amt.ManagementPresenceRemoteSAP)
    for (const sap of asArray(pr.Items && pr.Items.AMT_ManagementPresenceRemoteSAP)) {
      await call(s, 'ManagementPresenceRemoteSAP Delete', amt.ManagementPresenceRemoteSAP.Delete({ name: 'Name', value: sap.Name }))
    }
    // …and its certificates, as RPS's clearing deletes every AMT_PublicKeyCertificate.
    const certs = asArray((await enumPull(s, amt.PublicKeyCertificate)).Items.AMT_PublicKeyCertificate)
    for (const c of certs) await call(s, 'PublicKeyCertificate Delete', amt.PublicKeyCertificate.Delete({ name: 'InstanceID', value: c.InstanceID }))
    const after = await enumPull(s, amt.ManagementPresenceRemoteSAP)
    check('no server and no association left', asArray(after.Items && after.Items.AMT_ManagementPresenceRemoteSAP).length === 0 &&
      asArray((await enumPull(s, amt.RemoteAccessPolicyAppliesToMPS)).Items.AMT_RemoteAccessPolicyAppliesToMPS).length === 0)
  })
  await networkChecks(s, amt, ips, cim, ports)

  // --- Maintenance (§5.5) --------------------------------------------------------------------

  await step('AMT_TimeSynchronizationService', async () => {
    const low = (await call(s, 'GetLowAccuracyTimeSynch', amt.TimeSynchronizationService.GetLowAccuracyTimeSynch())).Body.GetLowAccuracyTimeSynch_OUTPUT
    check('GetLowAccuracyTimeSynch ReturnValue 0', low.ReturnValue === 0, show(low))
    check('Ta0 is numeric and near now', typeof low.Ta0 === 'number' && Math.abs(low.Ta0 - Date.now() / 1000) < 300, show(low.Ta0))
    const t = typeof low.Ta0 === 'number' ? low.Ta0 : Math.floor(Date.now() / 1000)
    const high = (await call(s, 'SetHighAccuracyTimeSynch', amt.TimeSynchronizationService.SetHighAccuracyTimeSynch(t, t, t))).Body.SetHighAccuracyTimeSynch_OUTPUT
    check('SetHighAccuracyTimeSynch ReturnValue 0', high.ReturnValue === 0, show(high))
  })

  await step('AMT_AuthorizationService SetAdminAclEntryEx', async () => {
    const digest = crypto.createHash('md5').update(`admin:${realm}:${adminPassword2}`).digest('base64')
    const e = await call(s, 'SetAdminAclEntryEx', amt.AuthorizationService.SetAdminACLEntryEx('admin', digest))
    check('SetAdminAclEntryEx ReturnValue 0', e.Body.SetAdminAclEntryEx_OUTPUT.ReturnValue === 0, show(e.Body.SetAdminAclEntryEx_OUTPUT))
    s.setCredentials('admin', adminPassword2)
    await call(s, 'AMT_GeneralSettings Get (new password)', amt.GeneralSettings.Get())
    check('the new admin password is accepted', true)
  })

  await step('AMT_SetupAndConfigurationService CommitChanges', async () => {
    const e = await call(s, 'CommitChanges', amt.SetupAndConfigurationService.CommitChanges())
    check('CommitChanges ReturnValue 0', e.Body.CommitChanges_OUTPUT.ReturnValue === 0, show(e.Body.CommitChanges_OUTPUT))
  })

  // --- Deactivation (§5.4), last: the simulator ends pre-provisioned ---------------------------

  await step('AMT_SetupAndConfigurationService Unprovision', async () => {
    const e = await call(s, 'Unprovision', amt.SetupAndConfigurationService.Unprovision(1))
    check('Unprovision ReturnValue 0', e.Body.Unprovision_OUTPUT.ReturnValue === 0, show(e.Body.Unprovision_OUTPUT))
    check('state file shows pre-provisioning after Unprovision', readState().control_mode === 0)
    const h = (await call(s, 'IPS_HostBasedSetupService Get (admin, after)', ips.HostBasedSetupService.Get()).catch(() => null))
    check('admin is refused after Unprovision', h === null)
  })

  console.log(`${passes} passed, ${failures} failed`)
  process.exit(failures === 0 ? 0 : 1)
}

// ---------------------------------------------------------------------------------------------
// The wired port's rules, the key store, wired 802.1X and Wi-Fi (RPS's wiredNetworkConfiguration,
// wifiNetworkConfiguration and rpc-go's configure wired/wireless, rps-protocol.md §5.1 step 5).
// Wi-Fi only where the device has a wireless adapter (the port `…Settings 1` has a MAC).

const FIXTURES = require('path').join(__dirname, '..', 'fixtures', 'ieee8021x')
const pemBody = (name) => fs.readFileSync(require('path').join(FIXTURES, name), 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')
// AddKey's KeyBlob: base64 of the PKCS#1 DER, as rpc-go sends it.
const pkcs1 = (name) => crypto.createPrivateKey(fs.readFileSync(require('path').join(FIXTURES, name), 'utf8'))
  .export({ type: 'pkcs1', format: 'der' }).toString('base64')
const publicPkcs1 = (name) => crypto.createPublicKey(fs.readFileSync(require('path').join(FIXTURES, name), 'utf8'))
  .export({ type: 'pkcs1', format: 'der' }).toString('base64')
const handleOf = (ref) => ref && ref.ReferenceParameters && ref.ReferenceParameters.SelectorSet &&
  String(ref.ReferenceParameters.SelectorSet.Selector)

async function networkChecks (s, amt, ips, cim, ports) {
  const wired = ports.find((p) => String(p.InstanceID).includes('Settings 0'))
  const wireless = ports.find((p) => String(p.InstanceID).includes('Settings 1'))

  await step('AMT_EthernetPortSettings static Put and its rules', async () => {
    const fixed = { ...wired, DHCPEnabled: false, IpSyncEnabled: false, SharedStaticIp: false, IPAddress: '192.168.7.50', SubnetMask: '255.255.255.0', DefaultGateway: '192.168.7.1', PrimaryDNS: '192.168.7.2' }
    const got = (await call(s, 'EthernetPortSettings Put (static)', amt.EthernetPortSettings.Put(fixed))).Body.AMT_EthernetPortSettings
    check('static Put echoes the address and the three flags', got.IPAddress === '192.168.7.50' && got.DHCPEnabled === false &&
      got.IpSyncEnabled === false && got.SharedStaticIp === false, show(got))
    for (const [what, bad] of [
      ['a gateway outside the subnet', { ...fixed, DefaultGateway: '10.9.9.9' }],
      ['a non-contiguous mask', { ...fixed, SubnetMask: '255.0.255.0' }],
      ['DHCP with a shared static address', { ...wired, DHCPEnabled: true, SharedStaticIp: true }],
      ['SharedStaticIp without IpSyncEnabled', { ...wired, DHCPEnabled: false, IpSyncEnabled: false, SharedStaticIp: true }]
    ]) {
      const r = await s.post(amt.EthernetPortSettings.Put(bad))
      check(`EthernetPortSettings Put with ${what} is a SOAP fault`, r.status === 400, `HTTP ${r.status}`)
    }
    const back = { ...wired, DHCPEnabled: true, IpSyncEnabled: true, SharedStaticIp: false }
    for (const k of ['IPAddress', 'SubnetMask', 'DefaultGateway', 'PrimaryDNS', 'SecondaryDNS']) delete back[k]
    const d = (await call(s, 'EthernetPortSettings Put (DHCP)', amt.EthernetPortSettings.Put(back))).Body.AMT_EthernetPortSettings
    check('DHCP again: the lease address comes back', d.DHCPEnabled === true && d.IPAddress === wired.IPAddress, show(d.IPAddress))
  })

  const handles = {}
  await step('AMT_PublicKeyManagementService AddKey / AddCertificate / AddTrustedRootCertificate', async () => {
    const k = (await call(s, 'AddKey', amt.PublicKeyManagementService.AddKey(pkcs1('client.key')))).Body.AddKey_OUTPUT
    check('AddKey ReturnValue 0 with a CreatedKey reference', k.ReturnValue === 0 && /Key: Handle/.test(handleOf(k.CreatedKey)), show(k))
    const k2 = (await call(s, 'AddKey (again)', amt.PublicKeyManagementService.AddKey(pkcs1('client.key')))).Body.AddKey_OUTPUT
    check('AddKey of a key AMT holds answers 2058 (rpc-go reads it as "already exists")', k2.ReturnValue === 2058, show(k2.ReturnValue))
    const c = (await call(s, 'AddCertificate', amt.PublicKeyManagementService.AddCertificate({ CertificateBlob: pemBody('client.pem') }))).Body.AddCertificate_OUTPUT
    check('AddCertificate ReturnValue 0 with a CreatedCertificate reference', c.ReturnValue === 0 && /Certificate: Handle/.test(handleOf(c.CreatedCertificate)), show(c))
    handles.client = handleOf(c.CreatedCertificate)
    const c2 = (await call(s, 'AddCertificate (no key)', amt.PublicKeyManagementService.AddCertificate({ CertificateBlob: pemBody('client2.pem') }))).Body.AddCertificate_OUTPUT
    check('AddCertificate without its key in the store is refused (2060)', c2.ReturnValue === 2060, show(c2.ReturnValue))
    const r = (await call(s, 'AddTrustedRootCertificate', amt.PublicKeyManagementService.AddTrustedRootCertificate({ CertificateBlob: pemBody('ca.pem') }))).Body.AddTrustedRootCertificate_OUTPUT
    check('AddTrustedRootCertificate ReturnValue 0', r.ReturnValue === 0, show(r))
    handles.root = handleOf(r.CreatedCertificate)
    const nr = (await call(s, 'AddTrustedRootCertificate (a leaf)', amt.PublicKeyManagementService.AddTrustedRootCertificate({ CertificateBlob: pemBody('client.pem') }))).Body.AddTrustedRootCertificate_OUTPUT
    check('a certificate that cannot issue is no trusted root (2063)', nr.ReturnValue === 2063, show(nr.ReturnValue))
    const certs = asArray((await enumPull(s, amt.PublicKeyCertificate)).Items.AMT_PublicKeyCertificate)
    check('PublicKeyCertificate lists both, TrustedRootCertficate boolean', certs.length === 2 &&
      certs.some((x) => x.TrustedRootCertficate === true) && certs.some((x) => x.TrustedRootCertficate === false), show(certs.map((x) => x.InstanceID)))
    check('X509Certificate is the DER sent', certs.some((x) => x.X509Certificate === pemBody('client.pem')))
    const keys = asArray((await enumPull(s, amt.PublicPrivateKeyPair)).Items.AMT_PublicPrivateKeyPair)
    check('PublicPrivateKeyPair DERKey is the PKCS#1 public key', keys.length === 1 && keys[0].DERKey === publicPkcs1('client.key'), show(keys))
  })

  await step('IPS_IEEE8021xSettings Put / SetCertificates / credential contexts', async () => {
    const x = (await call(s, 'IEEE8021xSettings Get', ips.IEEE8021xSettings.Get())).Body.IPS_IEEE8021xSettings
    const on = (await call(s, 'IEEE8021xSettings Put (EAP-TLS)', ips.IEEE8021xSettings.Put({ ElementName: x.ElementName, InstanceID: x.InstanceID, Enabled: 2, AuthenticationProtocol: 0, Username: 'peer-client', AvailableInS0: true, PxeTimeout: 120 }))).Body.IPS_IEEE8021xSettings
    check('EAP-TLS before SetCertificates is enabled without certificates (6)', on.Enabled === 6, show(on.Enabled))
    const noPw = await s.post(ips.IEEE8021xSettings.Put({ ElementName: x.ElementName, InstanceID: x.InstanceID, Enabled: 2, AuthenticationProtocol: 2, Username: 'alice' }))
    check('PEAP-MSCHAPv2 without a Password is a SOAP fault', noPw.status === 400, `HTTP ${noPw.status}`)
    // wsman-messages writes the handles as bare text; rpc-go (go-wsman-messages) as references.
    const sc = (await call(s, 'SetCertificates', ips.IEEE8021xSettings.SetCertificates(handles.root, handles.client))).Body.SetCertificates_OUTPUT
    check('SetCertificates ReturnValue 0', sc.ReturnValue === 0, show(sc))
    const g = (await call(s, 'IEEE8021xSettings Get', ips.IEEE8021xSettings.Get())).Body.IPS_IEEE8021xSettings
    check('with its certificates bound, 802.1X is enabled (2) and shows no Password', g.Enabled === 2 && !('Password' in g), show(g))
    const ctx = asArray((await enumPull(s, ips.IEEE8021xCredentialContext)).Items.IPS_8021xCredentialContext)
    check('two credential contexts name the certificates', ctx.length === 2 &&
      [handles.root, handles.client].every((h) => ctx.some((c) => handleOf(c.ElementInContext) === h)), show(ctx))
    const del = await s.post(amt.PublicKeyCertificate.Delete({ name: 'InstanceID', value: handles.client }))
    check('a bound certificate cannot be deleted (fault)', del.status === 400, `HTTP ${del.status}`)
    // RPS's clearing: 802.1X off (Enabled=3), then the keys and certificates go.
    await call(s, 'IEEE8021xSettings Put (off)', ips.IEEE8021xSettings.Put({ ...g, Enabled: 3 }))
    const keys = asArray((await enumPull(s, amt.PublicPrivateKeyPair)).Items.AMT_PublicPrivateKeyPair)
    for (const k of keys) await call(s, 'PublicPrivateKeyPair Delete', amt.PublicPrivateKeyPair.Delete({ name: 'InstanceID', value: k.InstanceID }))
    const certs = asArray((await enumPull(s, amt.PublicKeyCertificate)).Items.AMT_PublicKeyCertificate)
    for (const c of certs) await call(s, 'PublicKeyCertificate Delete', amt.PublicKeyCertificate.Delete({ name: 'InstanceID', value: c.InstanceID }))
    check('once 802.1X is off its key and certificates delete', asArray((await enumPull(s, amt.PublicKeyCertificate)).Items.AMT_PublicKeyCertificate).length === 0)
  })

  if (!wireless || /^[0-]*$/.test(String(wireless.MACAddress))) {
    check('no wireless adapter: the Wi-Fi classes are absent', (await s.post(amt.WiFiPortConfigurationService.Get())).status === 400)
    return
  }

  await step('Wi-Fi: the wireless port, sync settings and the port state (RPS\'s order)', async () => {
    const w = (await call(s, 'EthernetPortSettings Put (Settings 1)', amt.EthernetPortSettings.Put({ ...wireless, ConsoleTcpMaxRetransmissions: 5 }))).Body.AMT_EthernetPortSettings
    check('wireless port Put echoes DHCPEnabled true', w.DHCPEnabled === true, show(w))
    const noDhcp = await s.post(amt.EthernetPortSettings.Put({ ...wireless, DHCPEnabled: false }))
    check('the wireless port refuses a static address (fault)', noDhcp.status === 400, `HTTP ${noDhcp.status}`)
    const svc = (await call(s, 'WiFiPortConfigurationService Get', amt.WiFiPortConfigurationService.Get())).Body.AMT_WiFiPortConfigurationService
    check('localProfileSynchronizationEnabled numeric 0, UEFIWiFiProfileShareEnabled boolean', svc.localProfileSynchronizationEnabled === 0 &&
      typeof svc.UEFIWiFiProfileShareEnabled === 'boolean', show(svc))
    const boot = (await call(s, 'BootCapabilities Get', amt.BootCapabilities.Get())).Body.AMT_BootCapabilities
    check('BootCapabilities says UEFI Wi-Fi profile share', boot.UEFIWiFiCoExistenceAndProfileShare === true, show(boot))
    // RPS writes 3 and 1 (a number for the boolean).
    const put = (await call(s, 'WiFiPortConfigurationService Put', amt.WiFiPortConfigurationService.Put({ ...svc, localProfileSynchronizationEnabled: 3, UEFIWiFiProfileShareEnabled: 1 }))).Body.AMT_WiFiPortConfigurationService
    check('WiFiPortConfigurationService Put keeps 3 and true', put.localProfileSynchronizationEnabled === 3 && put.UEFIWiFiProfileShareEnabled === true, show(put))
    const rsc = (await call(s, 'WiFiPort RequestStateChange', cim.WiFiPort.RequestStateChange(32769))).Body.RequestStateChange_OUTPUT
    check('WiFiPort RequestStateChange(32769) ReturnValue 0', rsc.ReturnValue === 0, show(rsc))
    const port = (await call(s, 'WiFiPort Get', cim.WiFiPort.Get())).Body.CIM_WiFiPort
    check('WiFiPort EnabledState 32769', port.EnabledState === 32769, show(port.EnabledState))
  })

  await step('Wi-Fi: AddWiFiSettings as RPS builds it, and the profile rules', async () => {
    const sel = { name: 'Name', value: 'WiFi Endpoint 0' }
    const profile = (name, priority, extra) => ({ ElementName: name, InstanceID: `Intel(r) AMT:WiFi Endpoint Settings ${name}`, AuthenticationMethod: 6, EncryptionMethod: 4, SSID: 'PeerNet', Priority: priority, PSKPassPhrase: 'P&ssw<rd-peer', ...extra })
    const add = async (label, p, x, client, ca) => (await call(s, label, amt.WiFiPortConfigurationService.AddWiFiSettings(p, sel, x, client, ca))).Body.AddWiFiSettings_OUTPUT.ReturnValue
    check('AddWiFiSettings (WPA2-PSK) ReturnValue 0', await add('AddWiFiSettings', profile('peerHome', 1)) === 0)
    check('a second profile with the same name: 2058', await add('AddWiFiSettings (same name)', profile('peerHome', 2)) === 2058)
    check('a second profile with the same priority: 2067', await add('AddWiFiSettings (same priority)', profile('peerLab', 1)) === 2067)
    check('a 7-character passphrase: 3 (Invalid Parameter)', await add('AddWiFiSettings (short PSK)', profile('peerLab', 2, { PSKPassPhrase: 'short12' })) === 3)
    check('a name with a dash: 3', await add('AddWiFiSettings (bad name)', profile('peer-lab', 2)) === 3)
    // 802.1X: the key and certificates into the store, then the profile with its references.
    const k = (await call(s, 'AddKey', amt.PublicKeyManagementService.AddKey(pkcs1('client.key')))).Body.AddKey_OUTPUT
    const c = (await call(s, 'AddCertificate', amt.PublicKeyManagementService.AddCertificate({ CertificateBlob: pemBody('client.pem') }))).Body.AddCertificate_OUTPUT
    const r = (await call(s, 'AddTrustedRootCertificate', amt.PublicKeyManagementService.AddTrustedRootCertificate({ CertificateBlob: pemBody('ca.pem') }))).Body.AddTrustedRootCertificate_OUTPUT
    check('the 802.1X certificates are added', k.ReturnValue === 0 && c.ReturnValue === 0 && r.ReturnValue === 0)
    const corp = { ElementName: 'peerCorp', InstanceID: 'Intel(r) AMT:WiFi Endpoint Settings peerCorp', AuthenticationMethod: 7, EncryptionMethod: 4, SSID: 'PeerCorp', Priority: 3 }
    const dot1x = { ElementName: 'peerTls', InstanceID: 'Intel(r) AMT: 8021X Settings peerTls', AuthenticationProtocol: 0, Username: 'peer-client' }
    check('AddWiFiSettings (WPA2-802.1X, EAP-TLS) ReturnValue 0', await add('AddWiFiSettings (802.1X)', corp, dot1x, handleOf(c.CreatedCertificate), handleOf(r.CreatedCertificate)) === 0)
    const profiles = asArray((await enumPull(s, cim.WiFiEndpointSettings)).Items.CIM_WiFiEndpointSettings)
    check('WiFiEndpointSettings lists both profiles, numbers as numbers, no passphrase', profiles.length === 2 &&
      profiles.every((p) => typeof p.Priority === 'number' && !('PSKPassPhrase' in p)), show(profiles))
    const xs = asArray((await enumPull(s, cim.IEEE8021xSettings)).Items.CIM_IEEE8021xSettings)
    check('the 802.1X profile\'s CIM_IEEE8021xSettings, without a Password', xs.length === 1 && xs[0].Username === 'peer-client' && !('Password' in xs[0]), show(xs))
    // RPS's clearing deletes every profile whose Priority is not 0.
    for (const p of profiles) {
      if (p.Priority !== 0) await call(s, 'WiFiEndpointSettings Delete', cim.WiFiEndpointSettings.Delete({ name: 'InstanceID', value: p.InstanceID }))
    }
    check('profiles deleted, and the 802.1X settings with them',
      asArray((await enumPull(s, cim.WiFiEndpointSettings)).Items.CIM_WiFiEndpointSettings).length === 0 &&
      asArray((await enumPull(s, cim.IEEE8021xSettings)).Items.CIM_IEEE8021xSettings).length === 0)
  })
}

main().catch((e) => {
  console.log(`FAIL - peer crashed: ${e.stack || e}`)
  process.exit(1)
})
