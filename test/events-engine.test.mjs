// The sync events' engine, pure: flashes timed inside a frame, candidates weighed by how many pairs
// agree, a regular train's ambiguity, and a rate applied only when it stands out of its own noise.
// Every expectation comes from the construction of the inputs, never from a run.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { seededRandom } from './helpers.mjs'

const {
  flashOnsetsS,
  eventCandidates,
  chooseCandidate,
  fitRate,
  syncOnEvents,
  alignOnEvents,
  eventNoteText,
  eventToleranceS,
  describeEventFit,
  ANCHOR_DOUBT_S,
} = await import('../dist/record-audio.mjs')

const random = seededRandom

/** Irregular onsets: gaps drawn between minS and maxS. */
function irregular(rand, n, firstS, minS = 0.6, maxS = 2.4) {
  const times = [firstS]
  while (times.length < n) times.push(times.at(-1) + minS + rand() * (maxS - minS))
  return times
}

/** Mean brightness of each frame that exposes [k·P, k·P + exposureS] while lights are on [on, on + lastS]. */
function frames(onsetsS, lastS, n, periodS, exposureS, dark = 20, bright = 220) {
  return Array.from({ length: n }, (_, k) => {
    const from = k * periodS
    let lit = 0
    for (const on of onsetsS) lit += Math.max(0, Math.min(from + exposureS, on + lastS) - Math.max(from, on))
    return Math.round(dark + ((bright - dark) * lit) / exposureS)
  })
}

test('a flash is timed inside its frame from the partly lit frame; a shorter exposure only makes it late, by at most period − exposure', () => {
  const rand = random(1)
  const P = 1 / 30
  const onsets = irregular(rand, 12, 0.5).map((t) => t + rand() * P) // random sub-frame phases
  const n = Math.ceil((onsets.at(-1) + 1) / P)
  const pts = Array.from({ length: n }, (_, k) => k * P)
  const found = flashOnsetsS(frames(onsets, 0.1, n, P, P), pts, P)
  assert.equal(found.length, onsets.length)
  // Integer brightness over a 200-level swing: 1/200 of a frame at worst, plus rounding at both frames.
  for (let i = 0; i < onsets.length; i++)
    assert.ok(Math.abs(found[i] - onsets[i]) < P / 100, `${found[i]} ${onsets[i]}`)
  // The real exposure half the period, the assumption the full period: never early, at most P/2 late.
  const short = flashOnsetsS(frames(onsets, 0.1, n, P, P / 2), pts, P)
  for (let i = 0; i < onsets.length; i++) {
    const lateS = short[i] - onsets[i]
    assert.ok(lateS > -P / 100 && lateS <= P / 2 + P / 100, `${lateS}`)
  }
})

test('candidates: every click − flash difference, weighed by how many pairs agree; an irregular train has one clear winner', () => {
  const rand = random(2)
  const flashes = irregular(rand, 15, 2)
  const clicks = flashes.map((t) => t + 1.3) // the sound 1.3 s late: far beyond any nearest-click window
  const tol = eventToleranceS(1 / 30)
  const candidates = eventCandidates(flashes, clicks, tol)
  assert.ok(Math.abs(candidates[0].offsetS - 1.3) < 1e-9)
  assert.equal(candidates[0].pairs, 15)
  assert.ok(candidates[1].pairs <= 3, JSON.stringify(candidates)) // chance coincidences only
  for (let i = 1; i < candidates.length; i++) assert.ok(Math.abs(candidates[i].offsetS - 1.3) > 2 * tol)
  const { chosen, note } = chooseCandidate(candidates, null)
  assert.equal(note, null)
  assert.equal(chosen, candidates[0])
  const fit = syncOnEvents({ flashesS: flashes, clicksS: clicks, framePeriodS: 1 / 30, endS: 40, anchorDoubtS: null })
  assert.equal(fit.consistent, true)
  assert.equal(fit.used, 15)
  assert.ok(Math.abs(fit.offsetS - 1.3) < 1e-9 && Math.abs(fit.medianS - 1.3) < 1e-9)
})

test('a regular train supports each multiple of its period alike: ambiguous, never the neighbouring click; the anchors break a tie only when they can', () => {
  const flashes = Array.from({ length: 12 }, (_, k) => 1 + k)
  const clicks = flashes.map((t) => t + 0.6)
  const fit = syncOnEvents({ flashesS: flashes, clicksS: clicks, framePeriodS: 1 / 30, endS: 14, anchorDoubtS: null })
  assert.equal(fit.consistent, false)
  const [note] = fit.notes
  assert.equal(note.kind, 'ambiguous')
  const offsets = note.candidates.map((c) => Math.round(c.offsetS * 1000))
  assert.deepEqual(offsets.slice(0, 1), [600])
  assert.ok(offsets.includes(-400) && offsets.includes(1600), String(offsets))
  assert.match(eventNoteText(note), /ambiguous at a 1\.000 s period: offsets \+600 ms \(12 pairs\), .*irregular/)
  // Through the anchors (trusted to ANCHOR_DOUBT_S): +0.6 and −0.4 are both within reach: still ambiguous.
  const anchored = alignOnEvents({
    flashesS: flashes,
    clicksS: clicks,
    framePeriodS: 1 / 30,
    offsetS: 0,
    itsscale: null,
    clockRatio: 1,
    videoDurationS: 14,
  })
  assert.equal(anchored.summary.applied, false)
  assert.equal(anchored.offsetS, 0)
  assert.match(anchored.summary.why, /ambiguous/)
  // A train every 10 s, the anchors 0.6 s off: only one candidate within ANCHOR_DOUBT_S of them.
  assert.ok(ANCHOR_DOUBT_S < 10 - 0.6)
  const slow = flashes.map((t) => 10 * t)
  const tie = alignOnEvents({
    flashesS: slow,
    clicksS: slow.map((t) => t + 0.6),
    framePeriodS: 1 / 30,
    offsetS: 0,
    itsscale: null,
    clockRatio: 1,
    videoDurationS: 130,
  })
  assert.equal(tie.summary.applied, true)
  assert.ok(Math.abs(tie.offsetS - -0.6) < 1e-9, String(tie.offsetS))
  assert.equal(tie.summary.notes[0].kind, 'tie-broken-by-anchors')
  assert.match(eventNoteText(tie.summary.notes[0]), /the anchors \(trusted to 2 s\) chose \+600 ms/)
  // Without anchors (check), the same train is ambiguous.
  const bare = syncOnEvents({
    flashesS: slow,
    clicksS: slow.map((t) => t + 0.6),
    framePeriodS: 1 / 30,
    endS: 130,
    anchorDoubtS: null,
  })
  assert.equal(bare.consistent, false)
})

test('two agreeing pairs at least; one event, or none, gives no verdict', () => {
  const one = syncOnEvents({ flashesS: [5], clicksS: [5.012], framePeriodS: 1 / 30, endS: 20, anchorDoubtS: null })
  assert.equal(one.consistent, false)
  assert.deepEqual(one.notes, [{ kind: 'too-few', pairs: 1 }])
  assert.match(eventNoteText(one.notes[0]), /only 1 flash–click pair agrees on an offset: at least 2/)
  const none = syncOnEvents({ flashesS: [5, 9], clicksS: [], framePeriodS: 1 / 30, endS: 20, anchorDoubtS: null })
  assert.deepEqual(none.notes, [{ kind: 'no-events', flashes: 2, clicks: 0 }])
  assert.match(describeEventFit(none), /^no verdict: no click found/)
  // Two events, 10 s apart: a verdict (their gaps agree), one pair per wrong candidate is no rival.
  const two = syncOnEvents({
    flashesS: [5, 15],
    clicksS: [5.04, 15.04],
    framePeriodS: 1 / 30,
    endS: 20,
    anchorDoubtS: null,
  })
  assert.equal(two.consistent, true)
  assert.ok(Math.abs(two.offsetS - 0.04) < 1e-9)
})

test('the rate: applied when its effect at the far end passes 3× its error and 1 ms; two events a frame off set no rate', () => {
  // The case: flashes [5, 15.033], clicks [5, 15]: once 0.99668, 12 s at an hour's end.
  const two = syncOnEvents({
    flashesS: [5, 15.033],
    clicksS: [5, 15],
    framePeriodS: 1 / 30,
    endS: 3600,
    anchorDoubtS: null,
  })
  assert.equal(two.consistent, true)
  assert.equal(two.slope, 0)
  assert.equal(two.slopeFitted, null)
  assert.ok(Math.abs(two.offsetS - -0.0165) < 1e-9, String(two.offsetS)) // their mean
  assert.match(eventNoteText(two.notes[0]), /no rate from 2 pairs/)
  // Twenty events over 60 s, each off by up to a frame at random, no real rate: not applied.
  const rand = random(3)
  const flashes = irregular(rand, 20, 1, 2, 4)
  const jittered = flashes.map((t) => ({ flashS: t, clickS: t + 0.05 + (rand() - 0.5) / 30 }))
  const noise = fitRate(
    jittered.map((p) => ({ ...p, residualS: p.clickS - p.flashS })),
    flashes.at(-1) + 5,
  )
  assert.equal(noise.applied, false)
  assert.ok(Math.abs(noise.slope) < 3 * noise.slopeError + 1e-12)
  // A real 500 ppm with 1 ms of jitter: applied, and the fitted slope within three errors of it.
  const drifting = flashes.map((t) => ({ flashS: t, residualS: 0.05 + 500e-6 * t + (rand() - 0.5) * 0.002 }))
  const real = fitRate(
    drifting.map((p) => ({ ...p, clickS: p.flashS + p.residualS })),
    3600,
  )
  assert.equal(real.applied, true)
  assert.ok(Math.abs(real.slope - 500e-6) < 3 * real.slopeError, `${real.slope} ± ${real.slopeError}`)
  assert.ok(real.slopeError > 0)
})

test('--events: anchors 1.3 s off and a video 500 ppm slow are corrected from an irregular train; the corrected timeline lines up', () => {
  const rand = random(4)
  const flashesS = irregular(rand, 25, 1, 0.6, 2.4)
  // The truth: offset 0.177 s, the video 500 ppm slow. The anchors said 0.177 + 1.3 and no retiming.
  const clicksS = flashesS.map((t) => t * 1.0005 - 0.177)
  const aligned = alignOnEvents({
    flashesS,
    clicksS,
    framePeriodS: 1 / 30,
    offsetS: 0.177 + 1.3,
    itsscale: null,
    clockRatio: 1,
    videoDurationS: flashesS.at(-1) + 1,
  })
  assert.equal(aligned.summary.applied, true)
  assert.equal(aligned.summary.rateApplied, true)
  assert.ok(Math.abs(aligned.offsetS - 0.177) < 1e-6, String(aligned.offsetS))
  assert.ok(Math.abs(aligned.itsscale - 1.0005) < 1e-7, String(aligned.itsscale))
  assert.ok(Math.abs(aligned.summary.slopePpm - 500) < 0.1)
  assert.ok(aligned.summary.candidates[0].pairs === 25 && aligned.summary.candidates.length > 1)
  const again = alignOnEvents({
    flashesS,
    clicksS,
    framePeriodS: 1 / 30,
    ...aligned,
    clockRatio: 1,
    videoDurationS: flashesS.at(-1) + 1,
  })
  assert.ok(Math.abs(again.summary.medianMs) < 0.01, String(again.summary.medianMs))
  assert.equal(again.summary.rateApplied, false) // nothing left to retime
  // No clicks: the anchors stand.
  const none = alignOnEvents({
    flashesS,
    clicksS: [],
    framePeriodS: 1 / 30,
    offsetS: 0.3,
    itsscale: null,
    clockRatio: 1,
    videoDurationS: null,
  })
  assert.deepEqual([none.offsetS, none.itsscale, none.summary.applied], [0.3, null, false])
})

test('the rate from a few clustered events: noise alone is applied in under 1 % of fits, and never from under 5 pairs', () => {
  // Events 2–5 s apart in the first seconds of an hour-long video, timed to ±2 ms, with no real rate:
  // 3 events once passed 3 × their slope's error one fit in five, 1.5 s at the video's end.
  const rand = random(16)
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())
  for (const n of [3, 4, 5, 6, 8]) {
    let applied = 0
    const trials = 2000
    for (let k = 0; k < trials; k++) {
      let flashS = 5
      const pairs = Array.from({ length: n }, () => {
        flashS += 2 + 3 * rand()
        return { flashS, residualS: 0.002 * gauss() }
      })
      const fit = fitRate(pairs, 3600)
      if (fit.applied) applied++
      if (n < 5) assert.equal(fit.applied, false, `${n} pairs`)
    }
    assert.ok(applied / trials < 0.01, `${n} pairs: noise applied as a rate in ${applied} of ${trials} fits`)
  }
})

test('candidates: offsets beyond a minute either way are never weighed, so an hour of clicks costs no memory', async () => {
  const { MAX_EVENT_OFFSET_S } = await import('../dist/record-audio.mjs')
  const rand = random(7)
  const flashes = irregular(rand, 12, 2)
  // A train (~20 s long) heard 100 s late is out of reach; the same train 20 s late is found.
  assert.ok(
    eventCandidates(
      flashes,
      flashes.map((t) => t + MAX_EVENT_OFFSET_S + 40),
      0.033,
    ).length === 0,
  )
  assert.ok(
    Math.abs(
      eventCandidates(
        flashes,
        flashes.map((t) => t + 20),
        0.033,
      )[0].offsetS - 20,
    ) < 1e-9,
  )
  // 20 000 clicks over an hour against 1 800 flashes: found in a bounded time, within memory.
  const clicks = Array.from({ length: 20000 }, () => 3600 * rand()).sort((a, b) => a - b)
  const many = Array.from({ length: 1800 }, (_, k) => 2 * k + rand())
  const startedMs = Date.now()
  assert.ok(eventCandidates(many, clicks, 0.033).length > 0)
  assert.ok(Date.now() - startedMs < 20000)
})
