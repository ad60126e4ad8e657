// The audio's first sample: the device's stamp checked against the samples' arrival on disk. Pure
// functions, driven by arrival models whose true first-sample time is known by construction.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  arrivalEnvelope,
  checkAudioStart,
  describeStartCheck,
  newSyncRecord,
  parseSyncRecord,
  ARRIVAL_WINDOW_S,
  MAX_DELIVERY_LATENCY_S,
  ENVELOPE_RESOLUTION_S,
  LOCAL_QUEUE_S,
  PIPEWIRE_DELIVERY_S,
} from '../dist/record-audio.mjs'

const RATE = 48000
const T0 = 1795817200.125 // the first sample's true capture time

/**
 * A device delivering `chunk` frames at a time, each chunk reaching the WAV `latencyS(k)` after its
 * newest sample was captured; optionally a backlog of `backlogS` captured before and written at once.
 */
function deliveries({ chunk = 960, seconds = 4, latencyS = () => 0.003, backlogS = 0, rate = RATE }) {
  const looks = []
  const backlog = Math.round(backlogS * rate)
  let n = backlog
  if (backlog) looks.push({ epochS: T0 + (backlog - 1) / rate + 0.4, frames: backlog })
  for (let k = 0; n + chunk <= seconds * rate; k++) {
    n += chunk
    looks.push({ epochS: T0 + (n - 1) / rate + latencyS(k), frames: n })
  }
  return looks
}

test('arrivalEnvelope: the lowest (arrival − (n − 1) / rate), the first sample plus the shortest delivery', () => {
  const latencies = [0.009, 0.004, 0.0021, 0.007, 0.012, 0.0035]
  const env = arrivalEnvelope(deliveries({ latencyS: (k) => latencies[k % latencies.length] }), RATE)
  assert.ok(Math.abs(env.epochS - (T0 + 0.0021)) < 1e-6, `${env.epochS - T0}`)
  assert.ok(env.deliveries > 100)
  assert.ok(env.spanS <= ARRIVAL_WINDOW_S)
})

test('arrivalEnvelope: never before the first sample, whatever the delivery (bursts, a backlog, any order)', () => {
  for (let seed = 1; seed <= 50; seed++) {
    let x = seed
    const random = () => {
      x = (x * 16807) % 2147483647
      return x / 2147483647
    }
    const looks = deliveries({
      chunk: 1 + Math.floor(random() * 4000),
      latencyS: () => random() * 0.5,
      backlogS: random() * 2,
    }).sort(() => random() - 0.5)
    const env = arrivalEnvelope(looks, RATE)
    assert.ok(env.epochS >= T0 - 1e-6, `seed ${seed}: ${(env.epochS - T0) * 1000} ms before the truth`)
  }
})

test('arrivalEnvelope: a backlog written at once (a pipe source queued before the capture) does not loosen it', () => {
  const env = arrivalEnvelope(deliveries({ backlogS: 1.5, latencyS: () => 0.001 }), RATE)
  assert.ok(Math.abs(env.epochS - (T0 + 0.001)) < 1e-6)
})

test('arrivalEnvelope: only the first ARRIVAL_WINDOW_S of data counts (a fast card slides the nominal envelope down)', () => {
  // A card 1000 ppm fast, counted at the nominal rate: the residual falls by 1 ms a second.
  const looks = deliveries({ seconds: 30, rate: RATE * 1.001, latencyS: () => 0.002 })
  const env = arrivalEnvelope(looks, RATE)
  const fastest = (ARRIVAL_WINDOW_S + 0.05) * 0.001 // the most the window can slide
  assert.ok(env.epochS > T0 + 0.002 - fastest - 1e-6, `${(env.epochS - T0) * 1000} ms`)
  const whole = arrivalEnvelope(looks, RATE, 30)
  assert.ok(whole.epochS < T0 - 0.02, 'over the whole recording it would be 28 ms early')
  const byCard = arrivalEnvelope(looks, RATE * 1.001, 30)
  assert.ok(Math.abs(byCard.epochS - (T0 + 0.002)) < 1e-6, 'at the card’s own rate, the whole recording is fine')
})

test('arrivalEnvelope: no data, no envelope; looks of an empty data chunk are left out', () => {
  assert.equal(arrivalEnvelope([], RATE), null)
  assert.equal(arrivalEnvelope([{ epochS: T0, frames: 0 }], RATE), null)
  const env = arrivalEnvelope([{ epochS: T0 - 5, frames: 0 }, ...deliveries({ seconds: 1 })], RATE)
  assert.ok(Math.abs(env.epochS - (T0 + 0.003)) < 1e-6)
})

const envelopeAt = (epochS, deliveries = 150) => ({ epochS, deliveries, spanS: ARRIVAL_WINDOW_S })
const stampAt = (epochS) => ({ epochS, source: 'ffmpeg-input-start' })

test('checkAudioStart: a stamp later than the envelope is impossible: the envelope is used, the stamp kept, and the summary says by how much', () => {
  const c = checkAudioStart(stampAt(T0 + 0.4293), envelopeAt(T0))
  assert.equal(c.kind, 'stamp-late')
  assert.deepEqual(c.start, { epochS: T0, source: 'arrival-envelope' })
  assert.equal(c.stampEpochS, T0 + 0.4293)
  assert.equal(c.envelopeEpochS, T0)
  assert.ok(Math.abs(c.deliveryLatencyS + 0.4293) < 1e-6)
  assert.equal(c.uncertaintyS, ENVELOPE_RESOLUTION_S)
  assert.match(describeStartCheck(c), /^⚠ The device's start stamp was 429 ms late/)
})

test('checkAudioStart: a stamp above the envelope by less than its resolution is within it: the stamp is used', () => {
  const c = checkAudioStart(stampAt(T0 + ENVELOPE_RESOLUTION_S / 2), envelopeAt(T0))
  assert.equal(c.kind, 'plausible')
  assert.equal(c.start.epochS, T0 + ENVELOPE_RESOLUTION_S / 2)
  assert.equal(describeStartCheck(c), null)
})

test('checkAudioStart: a stamp below the envelope by a queue is used, the uncertainty spanning the two; nothing said', () => {
  const c = checkAudioStart(stampAt(T0), envelopeAt(T0 + 0.476))
  assert.equal(c.kind, 'plausible')
  assert.deepEqual(c.start, stampAt(T0))
  assert.ok(Math.abs(c.uncertaintyS - 0.476) < 1e-6)
  assert.ok(Math.abs(c.deliveryLatencyS - 0.476) < 1e-6)
  assert.equal(describeStartCheck(c), null)
  const close = checkAudioStart(stampAt(T0), envelopeAt(T0 + 0.0005))
  assert.equal(close.uncertaintyS, ENVELOPE_RESOLUTION_S, 'never sharper than the envelope')
})

test('checkAudioStart: a stamp below the envelope by more than a local queue and less than any queue holds: used, but undecided and said', () => {
  // 1.9 s: PulseAudio's largest hand-over or an early stamp (a pipe source's were −264 ms): nothing decides.
  for (const byS of [LOCAL_QUEUE_S + 0.01, 1.9, MAX_DELIVERY_LATENCY_S]) {
    const c = checkAudioStart(stampAt(T0 - byS), envelopeAt(T0))
    assert.equal(c.kind, 'undecided', `${byS} s`)
    assert.deepEqual(c.start, stampAt(T0 - byS))
    assert.ok(Math.abs(c.uncertaintyS - byS) < 1e-6)
    assert.match(describeStartCheck(c), /nothing in the files decides which/)
  }
})

test('checkAudioStart: on PipeWire the envelope is looser by its delivery cycles, and says so in its uncertainty', () => {
  const late = checkAudioStart(stampAt(T0 + 0.005), envelopeAt(T0), PIPEWIRE_DELIVERY_S)
  assert.equal(late.kind, 'stamp-late')
  assert.ok(Math.abs(late.uncertaintyS - (ENVELOPE_RESOLUTION_S + PIPEWIRE_DELIVERY_S)) < 1e-9)
  assert.match(describeStartCheck(late), /no later; earlier by 36 ms at most/)
})

test('checkAudioStart: a stamp below the envelope by more than any queue holds: reported, the envelope used, the uncertainty covering the stamp', () => {
  const byS = MAX_DELIVERY_LATENCY_S + 0.7
  const c = checkAudioStart(stampAt(T0 - byS), envelopeAt(T0))
  assert.equal(c.kind, 'stamp-early')
  assert.deepEqual(c.start, { epochS: T0, source: 'arrival-envelope' })
  assert.ok(Math.abs(c.uncertaintyS - byS) < 1e-6)
  assert.match(describeStartCheck(c), new RegExp(`took ${Math.round(byS * 1000)} ms to reach the WAV`))
})

test('checkAudioStart: that, but with an envelope made of too few deliveries (a device handing over seconds at once): the stamp is used', () => {
  const c = checkAudioStart(stampAt(T0 - MAX_DELIVERY_LATENCY_S - 1), envelopeAt(T0, 2))
  assert.equal(c.kind, 'loose')
  assert.equal(c.start.source, 'ffmpeg-input-start')
})

test('checkAudioStart: no stamp (the spawn time stands in) and an envelope: the envelope; no envelope: the stamp, unchecked', () => {
  const spawn = { epochS: T0 - 0.1, source: 'spawn-time' }
  const c = checkAudioStart(spawn, envelopeAt(T0))
  assert.equal(c.kind, 'no-stamp')
  assert.equal(c.stampEpochS, null)
  assert.equal(c.start.epochS, T0)
  assert.match(
    describeStartCheck(c),
    /^⚠ ffmpeg printed no start time: the first sample is placed by the samples’ arrival/,
  )
  const none = checkAudioStart(spawn, null)
  assert.equal(none.kind, 'unchecked')
  assert.deepEqual(none.start, spawn)
  assert.equal(none.uncertaintyS, null)
  const stamped = checkAudioStart(stampAt(T0), null)
  assert.equal(stamped.kind, 'unchecked')
  assert.equal(stamped.stampEpochS, T0)
})

test('parseSyncRecord keeps the stamp, the envelope, the one used, its uncertainty and the delivery latency, per device too', () => {
  const base = newSyncRecord({
    tool: 'record-audio test',
    feedDir: null,
    audioFile: '/tmp/a.wav',
    audioFormat: 'pulse',
    audioDevice: 'mic',
    audioSampleRate: 48000,
    audioChannels: 1,
    timing: parseSyncRecord('{"audioFile":"x","audioSampleRate":48000}').timing,
  })
  const checked = {
    audioStartEpochS: T0,
    audioStartSource: 'arrival-envelope',
    audioStartStampEpochS: T0 + 0.43,
    audioStartEnvelopeEpochS: T0,
    audioStartUncertaintyS: 0.002,
    audioStartCheck: 'stamp-late',
    audioDeliveryLatencyS: -0.43,
  }
  const record = { ...base, ...checked, audios: [{ ...base, ...checked, audioFailed: null }] }
  const back = parseSyncRecord(JSON.stringify(record))
  for (const [key, value] of Object.entries(checked)) {
    assert.equal(back[key], value, key)
    assert.equal(back.audios[0][key], value, `audios[0].${key}`)
  }
  const old = parseSyncRecord('{"audioFile":"x","audioSampleRate":48000,"audioStartCheck":"bogus"}')
  assert.equal(old.audioStartCheck, null)
  assert.equal(old.audioStartStampEpochS, null)
})

test('watchWrites: each write to a real file seen as it lands (inotify); where no watcher can be had (no such file), a poll', async () => {
  const { watchWrites } = await import('../dist/record-audio.mjs')
  const fs = await import('node:fs')
  const path = await import('node:path')
  const { tempDir } = await import('./helpers.mjs')
  const file = path.join(tempDir(), 'growing.wav')
  fs.writeFileSync(file, '')
  const seen = []
  const stop = watchWrites(file, () => seen.push({ atMs: performance.now(), bytes: fs.statSync(file).size }))
  const lagsMs = []
  for (let k = 1; k <= 5; k++) {
    await new Promise((resolve) => setTimeout(resolve, 30))
    const wroteMs = performance.now()
    fs.appendFileSync(file, Buffer.alloc(100))
    await new Promise((resolve) => setTimeout(resolve, 25))
    const first = seen.find((s) => s.bytes >= k * 100)
    assert.ok(first, `write ${k} seen`)
    lagsMs.push(first.atMs - wroteMs)
  }
  stop()
  // Seen by the event loop's next turn, not by a 10 ms poll: well under a poll's period under load.
  assert.ok(Math.max(...lagsMs) < 20, `lags ${lagsMs.map((x) => x.toFixed(1))} ms`)
  const before = seen.length
  fs.appendFileSync(file, Buffer.alloc(100))
  await new Promise((resolve) => setTimeout(resolve, 30))
  assert.equal(seen.length, before, 'nothing after the stop')

  let polls = 0
  const stopPoll = watchWrites(path.join(tempDir(), 'not-there.wav'), () => polls++)
  await new Promise((resolve) => setTimeout(resolve, 100))
  stopPoll()
  const counted = polls
  assert.ok(counted >= 10, `${counted} polls in 100 ms`)
  await new Promise((resolve) => setTimeout(resolve, 30))
  assert.equal(polls, counted, 'the poll stops too')
})
