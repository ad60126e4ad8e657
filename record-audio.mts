#!/usr/bin/env node
// record-audio: record a microphone with ffmpeg beside a TracktorLive video recording; at ctrl-c,
// hand back a finalized WAV, the offset between audio and video, and the ffmpeg command that
// muxes them in sync. Run `record-audio --help`, or read README.md.

// ── Settings ─────────────────────────────────────────────────────────────────────────────────
// Edit these, or override any of them with its flag (shown after each). null means "work it out".
// <feed_id> or --feed-id: TracktorLive's feed id, videos in ./<feed_id>/; null → the subfolder recording that
// overlaps the audio
const FEED_ID: string | null = null
// --format: alsa | pulse | avfoundation | dshow; null → alsa (Linux), avfoundation (macOS), dshow (Windows)
const AUDIO_INPUT_FMT: string | null = null
// --device: null → "default" (alsa, pulse), ":0" (avfoundation); dshow has none: list with --format dshow
const AUDIO_DEVICE: string | null = null
// --rate: samples per second, asked of the device and written to the WAV
const AUDIO_SAMPLERATE = 48000
// --channels: 1 = mono, 2 = stereo
const AUDIO_CHANNELS = 1
// --out: null → ./<feed_id>-audio.wav, or ./audio-<UTC start>.wav without one (-2, -3 … if taken); never
// overwritten
const AUDIO_OUTFILE: string | null = null
// --sync-out: null → the WAV's name with -sync.json instead of .wav
const SYNC_OUTFILE: string | null = null
// --video: null → the newest TracktorLive recording <ULID>.mp4 in ./<feed_id>/
const VIDEO_INFILE: string | null = null
// --muxed-out: null → the video's path without .mp4, plus MUXED_SUFFIX
const MUXED_OUTFILE: string | null = null
// --muxed-suffix: appended to the video's name for the muxed file
const MUXED_SUFFIX = '-with-audio.mp4'
// --ffmpeg: ffmpeg's name on PATH or its full path; ffprobe is looked for beside it
const PATH_TO_FFMPEG = 'ffmpeg'
// --timesync: TracktorLive's timesync cassette file; null → ./<feed_id>-timesyncUTC.parquet if it exists
const TIMESYNC_INFILE: string | null = null
// --video-start: the first frame's time, epoch seconds or ISO 8601 with a zone; beats every anchor on disk
const VIDEO_START: string | null = null
// --clock-offset: seconds added to every video time (ULID, timesync, mtime, --video-start) when the video's
// computer clock differs
const CLOCK_OFFSET_S = 0
// --no-drift-fix: keep the video's nominal timeline even when its real frame rate differs from it
const DRIFT_FIX = true
// --mux: after the stop, wait for the video to be finished, mux it and check the result
const MUX_AFTER_STOP = false
// --wait: how long --mux waits for TracktorLive to finish the video, in seconds
const MUX_WAIT_S = 600
// --plot: a PNG of the audio's waveform over the video's span, the offset marked; null → none
const PLOT_OUTFILE: string | null = null

import { $, which } from 'zx'
import minimist from 'minimist'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'

// ── Settings and flags ───────────────────────────────────────────────────────────────────────

export type Platform = NodeJS.Platform
export const FORMATS = ['alsa', 'pulse', 'avfoundation', 'dshow'] as const
export type Format = (typeof FORMATS)[number]

export interface Settings extends TimingOptions {
  feedId: string | null // null: find the video whose time span overlaps the audio
  format: Format
  device: string
  sampleRate: number
  channels: number
  audioFile: string | null // null: the default name, chosen when the recording starts
  syncFile: string | null
  videoFile: string | null
  muxedFile: string | null
  muxedSuffix: string
  ffmpeg: string
}

export interface MuxLater extends TimingOptions {
  syncFile: string
  videoFile: string | null
  muxedFile: string | null
  muxedSuffix: string
  ffmpeg: string
}

export type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'list-devices'; format: Format; ffmpeg: string }
  | { kind: 'record'; settings: Settings }
  | { kind: 'mux'; mux: MuxLater } // record-audio mux SYNC_FILE: the command again, e.g. once the video exists
  | { kind: 'repair'; file: string } // record-audio repair FILE.wav: sizes for a WAV whose writer was killed

/** The settings block as values, so that tests can run the same parsing with other defaults. */
export const FILE_DEFAULTS = {
  feedId: FEED_ID,
  format: AUDIO_INPUT_FMT,
  device: AUDIO_DEVICE,
  sampleRate: AUDIO_SAMPLERATE,
  channels: AUDIO_CHANNELS,
  audioFile: AUDIO_OUTFILE,
  syncFile: SYNC_OUTFILE,
  videoFile: VIDEO_INFILE,
  muxedFile: MUXED_OUTFILE,
  muxedSuffix: MUXED_SUFFIX,
  ffmpeg: PATH_TO_FFMPEG,
  timesyncFile: TIMESYNC_INFILE,
  videoStart: VIDEO_START,
  clockOffsetS: CLOCK_OFFSET_S,
  driftFix: DRIFT_FIX,
  mux: MUX_AFTER_STOP,
  waitS: MUX_WAIT_S,
  plotFile: PLOT_OUTFILE,
}
export type FileDefaults = typeof FILE_DEFAULTS

// flag → [settings key, what it is]; the help text is built from this table.
const FLAGS = {
  'feed-id': [
    'feedId',
    "TracktorLive feed id (or the first argument): videos are in ./<feed_id>/; none: any subfolder's recording that overlaps the audio",
  ],
  format: ['format', 'capture API: alsa | pulse (Linux), avfoundation (macOS), dshow (Windows)'],
  device: ['device', 'capture device, as ffmpeg names it for that format'],
  rate: ['sampleRate', 'sample rate in Hz'],
  channels: ['channels', 'number of channels'],
  out: ['audioFile', 'the WAV to write (never overwritten)'],
  'sync-out': ['syncFile', 'the JSON file with the timing and the mux command'],
  video: ['videoFile', 'the video to sync to, instead of the newest recording in ./<feed_id>/'],
  'muxed-out': ['muxedFile', 'the muxed mp4 that the printed command writes'],
  'muxed-suffix': ['muxedSuffix', "suffix for the muxed file's default name"],
  ffmpeg: ['ffmpeg', 'ffmpeg binary (name on PATH or full path)'],
  timesync: ['timesyncFile', "TracktorLive's timesync file: the first frame's time and the real frame rate"],
  'video-start': ['videoStart', "the first frame's time (epoch seconds, or ISO 8601 with a zone)"],
  'clock-offset': ['clockOffsetS', "seconds added to the video's times when its computer's clock differs"],
  wait: ['waitS', 'with --mux: how long to wait for the video to be finished, in seconds'],
  plot: ['plotFile', "a PNG: the audio's waveform above the video's span, their starts marked"],
} as const satisfies Record<string, [keyof FileDefaults, string]>

export class UsageError extends Error {}

export function defaultFormat(platform: Platform): Format {
  return platform === 'darwin' ? 'avfoundation' : platform === 'win32' ? 'dshow' : 'alsa'
}

/** The device list command the user should run for a format; the fix for most device errors. */
export function listDevicesHint(format: Format, ffmpeg = 'ffmpeg'): string {
  switch (format) {
    case 'pulse':
      return `${ffmpeg} -hide_banner -sources pulse (or: pactl list short sources)`
    case 'alsa':
      return `${ffmpeg} -hide_banner -sources alsa (or: arecord -L)`
    case 'avfoundation':
      return `${ffmpeg} -hide_banner -f avfoundation -list_devices true -i ""`
    case 'dshow':
      return `${ffmpeg} -hide_banner -list_devices true -f dshow -i dummy`
  }
}

/** ffmpeg's own device list for a format (avfoundation prints its list in the log). */
export function listDevicesArgs(format: Format): string[] {
  if (format === 'avfoundation') return ['-hide_banner', '-f', 'avfoundation', '-list_devices', 'true', '-i', '']
  return ['-hide_banner', '-sources', format]
}

/** `-sources` lines: `* name [description]` for the default, `  name [description]` for the rest. */
export function parseSources(text: string): { name: string; description: string; isDefault: boolean }[] {
  return [...text.matchAll(/^([* ]) (\S+) \[(.*)\]/gm)].map(([, mark, name, description]) => ({
    name,
    description,
    isDefault: mark === '*',
  }))
}

export function defaultDevice(format: Format): string | null {
  if (format === 'alsa' || format === 'pulse') return 'default'
  if (format === 'avfoundation') return ':0' // no video, first audio device
  return null // dshow devices have no stable default name
}

const PLATFORM_FORMATS: Record<Format, Platform[]> = {
  alsa: ['linux'],
  pulse: ['linux', 'freebsd'],
  avfoundation: ['darwin'],
  dshow: ['win32'],
}

function parseFormat(args: minimist.ParsedArgs, platform: Platform, defaults: FileDefaults): Format {
  const formatText = String(args.format ?? defaults.format ?? defaultFormat(platform))
  if (!(FORMATS as readonly string[]).includes(formatText))
    throw new UsageError(`--format ${JSON.stringify(formatText)} is unknown: use one of ${FORMATS.join(', ')}`)
  const format = formatText as Format
  if (!PLATFORM_FORMATS[format].includes(platform))
    throw new UsageError(`--format ${format} does not exist on ${platform}: use ${defaultFormat(platform)}`)
  return format
}

export interface TimingOptions {
  timesyncFile: string | null
  videoStartEpochS: number | null
  clockOffsetS: number
  driftFix: boolean
  mux: boolean
  waitS: number // --mux, --wait
  json: boolean // --json: the sync record on stdout, for scripts
  plotFile: string | null // --plot
}

function parseTiming(args: minimist.ParsedArgs, defaults: FileDefaults): TimingOptions {
  const videoStartText = args['video-start'] ?? defaults.videoStart
  const videoStartEpochS = videoStartText == null ? null : parseEpoch(String(videoStartText))
  if (Number.isNaN(videoStartEpochS))
    throw new UsageError(
      `--video-start ${JSON.stringify(videoStartText)} is not a time: give epoch seconds (1795817200.25) or ISO 8601 with a zone (2026-11-27T22:24:51.770Z)`,
    )
  const clockOffsetText = String(args['clock-offset'] ?? defaults.clockOffsetS)
  if (!/^[+-]?\d+(\.\d+)?$/.test(clockOffsetText))
    throw new UsageError(
      `--clock-offset ${JSON.stringify(clockOffsetText)} is not a number of seconds, e.g. --clock-offset=-0.25`,
    )
  const timesyncFile = args.timesync ?? defaults.timesyncFile
  if (timesyncFile != null && !/\.parquet$/i.test(timesyncFile))
    throw new UsageError(
      `--timesync ${JSON.stringify(timesyncFile)} must be the .parquet file of TracktorLive's timesync cassette`,
    )

  const waitS = integerIn('wait', args.wait ?? defaults.waitS, 0, 7 * 24 * 3600)
  const plotFile = args.plot ?? defaults.plotFile
  if (plotFile != null && !/\.png$/i.test(plotFile))
    throw new UsageError(`--plot ${JSON.stringify(plotFile)} must end in .png`)
  return {
    timesyncFile,
    videoStartEpochS,
    clockOffsetS: Number(clockOffsetText),
    driftFix: Boolean(args['drift-fix']),
    mux: Boolean(args.mux),
    waitS,
    json: Boolean(args.json),
    plotFile,
  }
}

/** Epoch seconds from `1795817200.25` or an ISO 8601 time with a zone; NaN when neither. */
export function parseEpoch(text: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text)
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$/i.test(text)) return NaN
  return Date.parse(text) / 1000
}

function integerIn(flag: string, raw: unknown, min: number, max: number): number {
  const text = String(raw)
  if (!/^\d+$/.test(text) || +text < min || +text > max)
    throw new UsageError(`--${flag} ${JSON.stringify(text)} is not a whole number from ${min} to ${max}`)
  return +text
}

/** Flags over the file's settings; every problem is a UsageError with a one-line message. */
export function parseCommand(argv: string[], platform: Platform, defaults: FileDefaults = FILE_DEFAULTS): Command {
  const unknown: string[] = []
  const args = minimist(argv, {
    string: Object.keys(FLAGS),
    boolean: ['help', 'version', 'drift-fix', 'mux', 'json', 'list-devices'],
    default: { 'drift-fix': defaults.driftFix, mux: defaults.mux },
    alias: { h: 'help' },
    unknown: (arg) => {
      if (!arg.startsWith('-') || arg === '-') return true
      unknown.push(arg)
      return false
    },
  })
  if (unknown.length && /^-\d/.test(unknown[0]))
    throw new UsageError(`${unknown[0]}: a negative value needs an equals sign, e.g. --clock-offset=${unknown[0]}`)
  if (unknown.length) throw new UsageError(`unknown flag ${unknown[0].split('=')[0]}: see record-audio --help`)
  if (args.help) return { kind: 'help' }
  if (args.version) return { kind: 'version' }
  if (args['list-devices'])
    return {
      kind: 'list-devices',
      format: parseFormat(args, platform, defaults),
      ffmpeg: String(args.ffmpeg ?? defaults.ffmpeg),
    }
  for (const flag of Object.keys(FLAGS)) {
    if (Array.isArray(args[flag])) throw new UsageError(`--${flag} is given more than once: give it once`)
    if (args[flag] === '') throw new UsageError(`--${flag} needs a value: --${flag}=VALUE`)
  }
  const positional = args._.map(String)
  // `mux FILE.json` is the subcommand; a lone `mux` is still a feed id.
  if (positional[0] === 'mux' && positional.length === 2) return parseMuxLater(args, positional[1], defaults)
  if (positional[0] === 'repair' && positional.length === 2) {
    const other = Object.keys(FLAGS).find((flag) => args[flag] !== undefined)
    if (other) throw new UsageError(`--${other} has no effect with repair: give only the WAV file`)
    if (!/\.wav$/i.test(positional[1]))
      throw new UsageError(`repair takes a .wav file, not ${JSON.stringify(positional[1])}`)
    return { kind: 'repair', file: positional[1] }
  }
  if (positional.length > 1)
    throw new UsageError(`too many arguments (${positional.join(' ')}): give one feed id; quote names with spaces`)
  if (positional.length && args['feed-id'] !== undefined)
    throw new UsageError('the feed id is given twice (argument and --feed-id): give it once')

  const format = parseFormat(args, platform, defaults)

  const device = args.device ?? defaults.device ?? defaultDevice(format)
  if (device == null)
    throw new UsageError(
      `--format ${format} needs --device "audio=<name>": list the names with ${listDevicesHint(format)}`,
    )

  const sampleRate = integerIn('rate', args.rate ?? defaults.sampleRate, 1000, 768000)
  const channels = integerIn('channels', args.channels ?? defaults.channels, 1, 64)

  const audioFile = args.out ?? defaults.audioFile
  if (audioFile != null && !/\.wav$/i.test(audioFile))
    throw new UsageError(`--out ${JSON.stringify(audioFile)} must end in .wav`)
  const { videoFile, muxedFile, muxedSuffix } = parseVideoFlags(args, defaults)

  const timing = parseTiming(args, defaults)
  const feedId = positional[0] ?? args['feed-id'] ?? defaults.feedId
  if (feedId != null && (feedId.trim() === '' || /[\\/]/.test(feedId) || feedId === '.' || feedId === '..'))
    throw new UsageError(`feed id ${JSON.stringify(feedId)} is not a folder name: give the id alone, without slashes`)

  return {
    kind: 'record',
    settings: {
      feedId,
      format,
      device,
      sampleRate,
      channels,
      audioFile,
      muxedSuffix,
      videoFile,
      muxedFile,
      syncFile: args['sync-out'] ?? defaults.syncFile,
      ffmpeg: String(args.ffmpeg ?? defaults.ffmpeg),
      ...timing,
    },
  }
}

const MUX_LATER_FLAGS = [
  'video',
  'muxed-out',
  'muxed-suffix',
  'ffmpeg',
  'timesync',
  'video-start',
  'clock-offset',
  'wait',
  'plot',
]

function parseMuxLater(args: minimist.ParsedArgs, syncFile: string, defaults: FileDefaults): Command {
  const other = Object.keys(FLAGS).find((flag) => args[flag] !== undefined && !MUX_LATER_FLAGS.includes(flag))
  if (other) throw new UsageError(`--${other} has no effect with mux: the sync file holds the recording's settings`)
  if (!/\.json$/i.test(syncFile))
    throw new UsageError(`mux takes the sync file (.json) that a recording wrote, not ${JSON.stringify(syncFile)}`)
  // The settings block's video and muxed file belong to new recordings, not to this old one.
  const { videoFile, muxedFile, muxedSuffix } = parseVideoFlags(args, { ...defaults, videoFile: null, muxedFile: null })
  return {
    kind: 'mux',
    mux: {
      syncFile,
      videoFile,
      muxedFile,
      muxedSuffix,
      ffmpeg: String(args.ffmpeg ?? defaults.ffmpeg),
      ...parseTiming(args, defaults),
    },
  }
}

/** --video, --muxed-out and --muxed-suffix, for a recording and for mux later alike. */
function parseVideoFlags(
  args: minimist.ParsedArgs,
  defaults: Pick<FileDefaults, 'videoFile' | 'muxedFile' | 'muxedSuffix'>,
) {
  const videoFile: string | null = args.video ?? defaults.videoFile
  if (videoFile != null && !/\.mp4$/i.test(videoFile))
    throw new UsageError(`--video ${JSON.stringify(videoFile)} is not an .mp4: give the TracktorLive recording`)
  const muxedFile: string | null = args['muxed-out'] ?? defaults.muxedFile
  if (muxedFile != null && !/\.mp4$/i.test(muxedFile))
    throw new UsageError(`--muxed-out ${JSON.stringify(muxedFile)} must end in .mp4`)
  const muxedSuffix = String(args['muxed-suffix'] ?? defaults.muxedSuffix)
  if (!/^[^\\/]*\.mp4$/i.test(muxedSuffix))
    throw new UsageError(`--muxed-suffix ${JSON.stringify(muxedSuffix)} must end in .mp4 and hold no slashes`)
  return { videoFile, muxedFile, muxedSuffix }
}

export function helpText(platform: Platform, defaults: FileDefaults = FILE_DEFAULTS): string {
  const format = (defaults.format ?? defaultFormat(platform)) as Format
  const shown: Record<string, string> = {
    feedId: defaults.feedId ?? 'none: the recording in any subfolder that overlaps the audio',
    format: format,
    device: defaults.device ?? defaultDevice(format) ?? '(required for dshow)',
    audioFile: defaults.audioFile ?? './<feed_id>-audio.wav',
    syncFile: defaults.syncFile ?? "the WAV's name + -sync.json",
    videoFile: defaults.videoFile ?? 'newest ./<feed_id>/<ULID>.mp4',
    muxedFile: defaults.muxedFile ?? 'video path − .mp4 + suffix',
    timesyncFile: defaults.timesyncFile ?? './<feed_id>-timesyncUTC.parquet if it exists',
    videoStart: defaults.videoStart ?? 'from the files (timesync, else the ULID)',
  }
  const rows = Object.entries(FLAGS).map(
    ([flag, [key, what]]) =>
      `  --${(`${flag}=…`).padEnd(16)} ${what}\n${' '.repeat(21)}default: ${shown[key] ?? String(defaults[key])}`,
  )
  return [
    'Usage: record-audio [<feed_id>] [flags]',
    '       record-audio mux <sync.json> [--video …] [--muxed-out …] [--muxed-suffix …] [--ffmpeg …]',
    '       record-audio repair <file.wav>',
    '',
    'Records audio until ctrl-c, then prints the ffmpeg command that muxes it into the newest',
    'TracktorLive video of that feed, with the offset between them corrected.',
    '',
    ...rows,
    `  --no-drift-fix     keep the video's nominal frame rate even when it ran slower or faster${defaults.driftFix ? '' : ' (set)'}`,
    `  --mux              after the stop, wait for the video, mux it and check the result${defaults.mux ? ' (set)' : ''}`,
    '  --json             print the sync record (JSON) on stdout instead of the command',
    '  --list-devices     list the capture devices of --format, the default marked *',
    '  -h, --help         this text',
    '  --version          the version',
    '',
    "mux <sync.json> prints the mux command again from a recording's sync file, e.g. once the video exists.",
    'repair <file.wav> writes the sizes into a WAV whose recording was killed (only the header changes).',
    '',
    `List capture devices: ${listDevicesHint(format)}`,
  ].join('\n')
}

// ── Names and times on disk ──────────────────────────────────────────────────────────────────

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
/** A TracktorLive recording is named <ULID>.mp4; nothing else in the folder is one. */
export const RECORDING_NAME = /^[0-7][0-9A-HJKMNP-TV-Z]{25}\.mp4$/i // a first digit above 7 overflows 48 bits

/** The 48-bit millisecond Unix time in a ULID's first 10 characters. */
export function ulidTimeMs(ulid: string): number {
  const head = ulid.slice(0, 10).toUpperCase()
  if (head.length !== 10 || head[0] > '7') throw new Error(`not a ULID: ${ulid}`)
  let ms = 0
  for (const char of head) {
    const digit = CROCKFORD.indexOf(char)
    if (digit < 0) throw new Error(`not a ULID: ${ulid}`)
    ms = ms * 32 + digit
  }
  return ms
}

/** TracktorLive's newest recording among file names: the greatest ULID, not the newest mtime. */
export function newestRecording(names: string[]): string | undefined {
  return names
    .filter((name) => RECORDING_NAME.test(name))
    .sort((a, b) => (a.toUpperCase() < b.toUpperCase() ? -1 : a.toUpperCase() > b.toUpperCase() ? 1 : 0))
    .at(-1)
}

/** `name.wav` if free, else `name-2.wav`, `name-3.wav`, … */
export function freeName(file: string, exists: (file: string) => boolean): string {
  if (!exists(file)) return file
  const ext = path.extname(file)
  const stem = file.slice(0, file.length - ext.length)
  for (let n = 2; ; n++) if (!exists(`${stem}-${n}${ext}`)) return `${stem}-${n}${ext}`
}

/** The sync file belongs to its WAV: same name, -sync.json for .wav. */
export function syncFileFor(audioFile: string): string {
  return `${audioFile.replace(/\.wav$/i, '')}-sync.json`
}

export function muxedFileFor(videoFile: string, suffix: string): string {
  return videoFile.replace(/\.mp4$/i, '') + suffix
}

/** `20261127T222451Z`: a UTC time that sorts and fits in a file name on every system. */
export function fileTimestamp(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')
}

export interface Candidate {
  file: string
  startEpochS: number
  endEpochS: number
  overlapS: number
}

/** Recordings by how much of the audio they cover, most first; the best covers some of it. */
export function rankByOverlap(
  videos: Omit<Candidate, 'overlapS'>[],
  audioStartEpochS: number,
  audioEndEpochS: number,
): Candidate[] {
  return videos
    .map((v) => ({
      ...v,
      overlapS: Math.max(0, Math.min(v.endEpochS, audioEndEpochS) - Math.max(v.startEpochS, audioStartEpochS)),
    }))
    .sort((a, b) => b.overlapS - a.overlapS || b.startEpochS - a.startEpochS)
}

// ── The capture ──────────────────────────────────────────────────────────────────────────────

/** ffmpeg's arguments for the capture. No -y: an existing file makes ffmpeg refuse (-n). */
export function captureArgs(
  s: Pick<Settings, 'format' | 'device' | 'sampleRate' | 'channels'>,
  audioFile: string,
): string[] {
  // alsa and pulse stamp packets with epoch time; avfoundation and dshow do not, so there the
  // arrival time is the best epoch anchor ffmpeg can give (about one fragment late).
  const wallclock = s.format === 'avfoundation' || s.format === 'dshow' ? ['-use_wallclock_as_timestamps', '1'] : []
  // Asking the device for the rate and channel count avoids a resample; avfoundation takes no such options.
  const deviceSpec =
    s.format === 'avfoundation' ? [] : ['-sample_rate', String(s.sampleRate), '-channels', String(s.channels)]

  return [
    '-hide_banner',
    '-nostats',
    '-loglevel',
    'info', // info prints the input's start: time
    ...wallclock,
    '-f',
    s.format,
    ...deviceSpec,
    '-i',
    s.device,
    '-map',
    '0:a:0',
    '-ar',
    String(s.sampleRate),
    '-ac',
    String(s.channels),
    '-c:a',
    'pcm_s16le',
    '-rf64',
    'auto',
    '-flush_packets',
    '1',
    '-f',
    'wav',
    '-n',
    audioFile,
  ]
}

export interface AudioStart {
  epochS: number
  source: 'ffmpeg-input-start' | 'ffmpeg-wallclock' | 'spawn-time'
}

/** The epoch time of the first sample, from ffmpeg's `Input #0, <fmt>, from …` / `start: X` lines. */
export function parseInputStart(stderr: string, format: Format): AudioStart | undefined {
  const match = /^Input #0, (\w+), from [^\n]*\n(?:[^\n]*\n)*?\s*Duration: [^\n]*?start: (-?\d+(?:\.\d+)?)/m.exec(
    stderr,
  )
  if (!match) return undefined
  const epochS = Number(match[2])
  if (!(epochS > 1e9)) return undefined // not an epoch time: the device's own clock
  return { epochS, source: format === 'alsa' || format === 'pulse' ? 'ffmpeg-input-start' : 'ffmpeg-wallclock' }
}

/** The last line of ffmpeg's log that says what went wrong. */
export function ffmpegErrorLine(stderr: string): string {
  const lines = stderr
    .split(/[\r\n]+/)
    .map((line) => line.trim())
    .filter(Boolean)
  const noise =
    /^(Press \[q\]|Exiting normally|Guessed Channel|Stream mapping|Stream #|Input #|Output #|Duration:|Metadata:|[A-Z]+\s+:|size=|video:|Conversion failed)/
  return lines.filter((line) => !noise.test(line)).at(-1) ?? lines.at(-1) ?? 'no message'
}

export interface WavInfo {
  dataOffset: number
  dataBytes: number
  channels: number
  sampleRate: number
  bitsPerSample: number
  finalized: boolean // false when ffmpeg never wrote the sizes back (killed, power cut)
  junkOffset: number | null // ffmpeg's -rf64 auto reserves a JUNK chunk that becomes ds64 past 4 GiB
}

const UNSET = 0xffffffff

/** Reads a RIFF or RF64 header from the first bytes of a WAV file of `fileBytes` bytes. */
export function parseWavHeader(header: Buffer, fileBytes: number): WavInfo {
  const id = header.toString('latin1', 0, 4)
  if (header.length < 12 || (id !== 'RIFF' && id !== 'RF64') || header.toString('latin1', 8, 12) !== 'WAVE')
    throw new Error('not a WAV file')
  let offset = 12
  let ds64: { riffBytes: number; dataBytes: number } | undefined
  let junkOffset: number | null = null
  let format: Pick<WavInfo, 'channels' | 'sampleRate' | 'bitsPerSample'> | undefined
  while (offset + 8 <= header.length) {
    const chunk = header.toString('latin1', offset, offset + 4)
    const size = header.readUInt32LE(offset + 4)
    if (chunk === 'ds64')
      ds64 = {
        riffBytes: Number(header.readBigUInt64LE(offset + 8)),
        dataBytes: Number(header.readBigUInt64LE(offset + 16)),
      }
    if (chunk === 'JUNK' && size >= 28) junkOffset = offset
    if (chunk === 'fmt ')
      format = {
        channels: header.readUInt16LE(offset + 10),
        sampleRate: header.readUInt32LE(offset + 12),
        bitsPerSample: header.readUInt16LE(offset + 22),
      }
    if (chunk === 'data') {
      if (!format) throw new Error('WAV data before its fmt chunk')
      const dataOffset = offset + 8
      const riffBytes = id === 'RF64' ? ds64?.riffBytes : header.readUInt32LE(4)
      const dataBytes = size === UNSET && id === 'RF64' ? ds64?.dataBytes : size
      const finalized =
        riffBytes !== undefined &&
        dataBytes !== undefined &&
        riffBytes !== UNSET &&
        dataBytes !== UNSET &&
        riffBytes + 8 <= fileBytes &&
        dataOffset + dataBytes <= fileBytes
      return {
        ...format,
        dataOffset,
        dataBytes: finalized && dataBytes !== undefined ? dataBytes : fileBytes - dataOffset,
        finalized,
        junkOffset,
      }
    }
    offset += 8 + size + (size % 2)
  }
  throw new Error('no data chunk in the first bytes of the WAV')
}

export interface WavRepair {
  kind: 'RIFF' | 'RF64'
  dataBytes: number
  patches: { offset: number; bytes: Buffer }[]
}

/**
 * The header writes that give an unfinalized WAV the sizes its file holds: RIFF when they fit in
 * 32 bits, else RF64 in the JUNK chunk ffmpeg reserved for it. A trailing partial sample frame is
 * left outside the data chunk. null: nothing to repair.
 */
export function wavRepair(header: Buffer, fileBytes: number): WavRepair | null {
  const info = parseWavHeader(header, fileBytes)
  if (info.finalized) return null
  const frameBytes = info.channels * (info.bitsPerSample / 8)
  const dataBytes = Math.floor((fileBytes - info.dataOffset) / frameBytes) * frameBytes
  const riffBytes = info.dataOffset + dataBytes - 8
  const u32 = (n: number) => {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(n)
    return b
  }
  if (riffBytes < UNSET) {
    return {
      kind: 'RIFF',
      dataBytes,
      patches: [
        { offset: 0, bytes: Buffer.from('RIFF') },
        { offset: 4, bytes: u32(riffBytes) },
        { offset: info.dataOffset - 4, bytes: u32(dataBytes) },
      ],
    }
  }
  if (info.junkOffset === null) throw new Error('the WAV is past 4 GiB and has no JUNK chunk to hold RF64 sizes')
  const ds64 = Buffer.alloc(36)
  ds64.write('ds64', 0, 'latin1')
  ds64.writeUInt32LE(header.readUInt32LE(info.junkOffset + 4), 4) // the chunk keeps its size
  ds64.writeBigUInt64LE(BigInt(riffBytes), 8)
  ds64.writeBigUInt64LE(BigInt(dataBytes), 16)
  ds64.writeBigUInt64LE(BigInt(dataBytes / frameBytes), 24)
  ds64.writeUInt32LE(0, 32) // no table
  return {
    kind: 'RF64',
    dataBytes,
    patches: [
      { offset: 0, bytes: Buffer.from('RF64') },
      { offset: 4, bytes: u32(UNSET) },
      { offset: info.junkOffset, bytes: ds64 },
      { offset: info.dataOffset - 4, bytes: u32(UNSET) },
    ],
  }
}

export const AUDIO_SPAN_TOLERANCE_S = 0.05

/**
 * Samples written against wall time: at least every sample up to the stop request, at most what
 * arrived before ffmpeg exited, each within 50 ms.
 */
export function checkAudioSpan(
  audioS: number,
  wallToStopS: number,
  wallToExitS: number,
): { ok: boolean; wallSpanS: number } {
  const ok = audioS >= wallToStopS - AUDIO_SPAN_TOLERANCE_S && audioS <= wallToExitS + AUDIO_SPAN_TOLERANCE_S
  return { ok, wallSpanS: wallToStopS }
}

// ── The video ────────────────────────────────────────────────────────────────────────────────

/**
 * An mp4 is finished when a `moov` box lies wholly inside it. While OpenCV writes, the file is
 * ftyp, free, mdat (size 0: to end of file) and no moov. `readAt(offset, 16)` returns the bytes there.
 */
export function hasMoov(fileBytes: number, readAt: (offset: number, length: number) => Buffer): boolean {
  let offset = 0
  while (offset + 8 <= fileBytes) {
    const head = readAt(offset, 16)
    if (head.length < 8) return false
    let size = head.readUInt32BE(0)
    const type = head.toString('latin1', 4, 8)
    if (size === 1) {
      if (head.length < 16) return false
      size = Number(head.readBigUInt64BE(8))
    } else if (size === 0) {
      size = fileBytes - offset
    }
    if (size < 8) return false
    if (type === 'moov') return offset + size <= fileBytes
    offset += size
  }
  return false
}

export function isFinalizedMp4(file: string): boolean {
  const fd = fs.openSync(file, 'r')
  try {
    const fileBytes = fs.fstatSync(fd).size
    return hasMoov(fileBytes, (offset, length) => {
      const buffer = Buffer.alloc(length)
      return buffer.subarray(0, fs.readSync(fd, buffer, 0, length, offset))
    })
  } finally {
    fs.closeSync(fd)
  }
}

// ── The video's clock ────────────────────────────────────────────────────────────────────────

export interface VideoClues {
  ulidEpochS: number // minted when the writer opened: before the first frame
  userStartEpochS: number | null // --video-start
  timesync: number[] | null // one epoch time per frame, from TracktorLive's timesync cassette
  clockOffsetS: number // added to every time above (and the mtime)
  frames: number | null // from ffprobe, once the mp4 is finished
  nominalFps: number | null // the rate the mp4 claims
  mtimeEpochS: number | null // ≈ the last frame: the writer's release adds the moov then
  driftFix: boolean
}

export interface VideoTiming {
  startEpochS: number
  source: 'video-start-flag' | 'timesync' | 'ulid'
  uncertaintyS: number
  nominalDurationS: number | null // D = frames / nominal fps
  realSpanS: number | null // S: the wall-clock time those frames took
  spanSource: 'timesync' | 'mtime' | null
  driftPpm: number | null
  driftAtEndMs: number | null
  itsscale: number | null // S / D when the drift is corrected
  warnings: string[]
}

export const MAX_MTIME_DRIFT = 0.05

/**
 * The video's first frame on the audio's clock, how far to trust it, and its drift. Anchors, best
 * first: the user's time, the timesync file's first row, the ULID (a lower bound: it is minted
 * before the first frame). The real span comes from the timesync rows, else from start to mtime.
 */
export function videoTiming(c: VideoClues): VideoTiming {
  const framePeriodS = c.nominalFps ? 1 / c.nominalFps : null
  const warnings: string[] = []
  const ulidStart = c.ulidEpochS + c.clockOffsetS
  let timesync = c.timesync?.length ? c.timesync : null
  // The ULID is minted before the first frame, and start hooks take seconds at most: a file far
  // off belongs to another run of the same feed (it is rewritten at every stop).
  if (timesync && (timesync[0] < c.ulidEpochS - 1 || timesync[0] > c.ulidEpochS + 10)) {
    warnings.push(
      `the timesync file starts ${(timesync[0] - c.ulidEpochS).toFixed(1)} s from the video's ULID, so it belongs to another recording: not used`,
    )
    timesync = null
  }
  const timesyncStart = timesync ? timesync[0] + c.clockOffsetS : null
  const [startEpochS, source, uncertaintyS] =
    c.userStartEpochS != null
      ? [c.userStartEpochS + c.clockOffsetS, 'video-start-flag' as const, 0]
      : timesyncStart != null
        ? [timesyncStart, 'timesync' as const, framePeriodS ?? 0.04] // stamped after tracking: within a frame
        : [ulidStart, 'ulid' as const, framePeriodS ?? 0.04] // the first frame follows by about a camera frame, more if start hooks run

  const nominalDurationS = c.frames && c.nominalFps ? c.frames / c.nominalFps : null
  let realSpanS: number | null = null
  let spanSource: VideoTiming['spanSource'] = null
  if (timesync && timesync.length >= 2 && c.frames) {
    const realFps = (timesync.length - 1) / (timesync[timesync.length - 1] - timesync[0])
    realSpanS = c.frames / realFps
    spanSource = 'timesync'
  } else if (c.mtimeEpochS != null && nominalDurationS != null) {
    realSpanS = c.mtimeEpochS + c.clockOffsetS - startEpochS
    spanSource = 'mtime'
  }
  if (c.mtimeEpochS != null && nominalDurationS != null && framePeriodS != null && spanSource === 'mtime') {
    const gapS = c.mtimeEpochS + c.clockOffsetS - nominalDurationS - startEpochS
    if (Math.abs(gapS) > framePeriodS)
      warnings.push(
        `the video's end (mtime − frames/fps) puts its start ${(gapS * 1000).toFixed(0)} ms after the ${source === 'ulid' ? 'ULID' : 'start given'}: ` +
          `either the camera ran ${((gapS / nominalDurationS) * 100).toFixed(2)} % slower than its nominal ${c.nominalFps} fps, or the first frame came that much later; a timesync file tells them apart`,
      )
  }
  let driftPpm: number | null = null
  let driftAtEndMs: number | null = null
  let itsscale: number | null = null
  if (realSpanS != null && nominalDurationS != null && framePeriodS != null) {
    driftPpm = (realSpanS / nominalDurationS - 1) * 1e6
    driftAtEndMs = (realSpanS - nominalDurationS) * 1000
    // From the mtime, S also holds any lateness of the first frame; stretching to it still anchors
    // the video's end to the truth and never makes the start worse. Past 5 % the mtime is more
    // likely not the recording's end at all (a copied file): then nothing is corrected.
    const plausible = spanSource === 'timesync' || Math.abs(realSpanS / nominalDurationS - 1) <= MAX_MTIME_DRIFT
    if (!plausible)
      warnings.push(
        `the mtime puts the video's end ${(realSpanS - nominalDurationS).toFixed(1)} s off its nominal length, too far for a camera's drift (was the file copied?): no drift correction; a timesync file gives the real rate`,
      )
    if (c.driftFix && plausible && Math.abs(realSpanS - nominalDurationS) > framePeriodS)
      itsscale = realSpanS / nominalDurationS
  }
  return {
    startEpochS,
    source,
    uncertaintyS,
    nominalDurationS,
    realSpanS,
    spanSource,
    driftPpm,
    driftAtEndMs,
    itsscale,
    warnings,
  }
}

/** ffprobe's `30/1` or `30000/1001` as a number. */
export function parseRate(text: string | undefined): number | null {
  const [num, den = '1'] = String(text ?? '').split('/')
  const rate = Number(num) / Number(den)
  return Number.isFinite(rate) && rate > 0 ? rate : null
}

// ── The picture ──────────────────────────────────────────────────────────────────────────────

export const PLOT_WIDTH = 1200
export const PLOT_HEIGHT = 240

export interface PlotInput {
  audioFile: string
  plotFile: string
  audioStartEpochS: number
  audioDurationS: number
  videoStartEpochS: number
  videoDurationS: number
}

/**
 * ffmpeg draws it: the waveform (showwavespic) at the audio's place on a shared time axis, the
 * video's span as an orange bar below, the video's first frame as a red line, the audio's first
 * sample as a green one. Their distance is the offset. No text, so no font is needed.
 */
export function plotArgs(p: PlotInput): { args: string[]; videoX: number; audioX: number } {
  const margin = 20
  const t0 = Math.min(p.audioStartEpochS, p.videoStartEpochS)
  const t1 = Math.max(p.audioStartEpochS + p.audioDurationS, p.videoStartEpochS + p.videoDurationS)
  const pxPerS = (PLOT_WIDTH - 2 * margin) / Math.max(t1 - t0, 1e-3)
  const x = (epochS: number) => Math.round(margin + (epochS - t0) * pxPerS)
  const [audioX, videoX] = [x(p.audioStartEpochS), x(p.videoStartEpochS)]
  const audioW = Math.max(2, Math.round(p.audioDurationS * pxPerS))
  const videoW = Math.max(2, Math.round(p.videoDurationS * pxPerS))
  const graph = [
    `[0:a]showwavespic=s=${audioW}x120:colors=0x1f77b4[wave]`,
    `[1:v][wave]overlay=x=${audioX}:y=20,` +
      `drawbox=x=${videoX}:y=160:w=${videoW}:h=40:color=0xff7f0e:t=fill,` +
      `drawbox=x=${videoX}:y=0:w=2:h=${PLOT_HEIGHT}:color=0xd62728:t=fill,` +
      `drawbox=x=${audioX}:y=0:w=2:h=150:color=0x2ca02c:t=fill[out]`,
  ].join(';')
  return {
    videoX,
    audioX,
    args: [
      '-hide_banner',
      '-v',
      'error',
      '-n',
      '-i',
      p.audioFile,
      '-f',
      'lavfi',
      '-i',
      `color=c=white:s=${PLOT_WIDTH}x${PLOT_HEIGHT}:d=1`,
      '-filter_complex',
      graph,
      '-map',
      '[out]',
      '-frames:v',
      '1',
      p.plotFile,
    ],
  }
}

// ── The live status ─────────────────────────────────────────────────────────────────────────

export const SILENCE_DBFS = -80
export const SILENCE_WARN_S = 5

/** RMS level of 16-bit samples in dBFS (−Infinity for digital silence), of every `step`-th sample. */
export function levelDbfs(samples: Int16Array, step = 1): number {
  let sum = 0
  let count = 0
  for (let i = 0; i < samples.length; i += step, count++) sum += samples[i] * samples[i]
  return count ? 10 * Math.log10(sum / count / (32768 * 32768)) : -Infinity
}

/** The status line: elapsed time, WAV size, input level with a bar (colored on a TTY). */
export function statusLine(elapsedS: number, wavBytes: number, dbfs: number, color: boolean): string {
  const hms = [elapsedS / 3600, (elapsedS / 60) % 60, elapsedS % 60]
    .map((n) => String(Math.floor(n)).padStart(2, '0'))
    .join(':')
  const size = wavBytes >= 1e9 ? `${(wavBytes / 1e9).toFixed(2)} GB` : `${(wavBytes / 1e6).toFixed(1)} MB`
  const level = Number.isFinite(dbfs) ? `${dbfs.toFixed(1)} dBFS` : 'silence'
  const bar = '▮'.repeat(Math.max(0, Math.min(20, Math.round((dbfs + 80) / 4))))
  const dot = color ? '\x1b[31m●\x1b[0m' : '●'
  return `${dot} ${hms}  ${size}  ${level.padStart(11)} ${color ? `\x1b[32m${bar}\x1b[0m` : bar}`
}

// ── Sync arithmetic and the mux command ──────────────────────────────────────────────────────

export interface MuxInput {
  audioFile: string
  videoFile: string
  muxedFile: string
  sampleRate: number
  offsetS: number // audioStartEpochS − videoStartEpochS
  videoDurationS: number | null // on the output timeline; null while the video is unfinished: the audio is not cut
  itsscale?: number | null // retimes the copied video to its real span (drift)
}

export const MAX_AAC_RATE = 96000

/** The muxed file's name for the audio's rate: past AAC's 96 kHz the container is Matroska. */
export function muxedNameForRate(muxedFile: string, sampleRate: number): string {
  return sampleRate > MAX_AAC_RATE ? muxedFile.replace(/\.mp4$/i, '.mkv') : muxedFile
}

export interface MuxPlan {
  args: string[]
  delaySamples: number
  trimSamples: number
  lengthSamples: number | null
  filter: string
}

/**
 * Late audio gets N samples of silence in front (adelay), early audio loses its first N samples
 * (atrim): both exact to the sample and independent of players' edit-list support, unlike
 * -itsoffset. The audio is then padded or cut to the video's length, unlike -shortest, which
 * overshoots with a copied video stream.
 */
export function muxPlan(m: MuxInput): MuxPlan {
  const shiftSamples = Math.round(m.offsetS * m.sampleRate)
  const delaySamples = Math.max(0, shiftSamples)
  const trimSamples = Math.max(0, -shiftSamples)
  const lengthSamples = m.videoDurationS == null ? null : Math.round(m.videoDurationS * m.sampleRate)
  const steps = [
    ...(delaySamples ? [`adelay=delays=${delaySamples}S:all=1`] : []),
    ...(trimSamples ? [`atrim=start_sample=${trimSamples}`, 'asetpts=PTS-STARTPTS'] : []),
    ...(lengthSamples != null ? [`apad=whole_len=${lengthSamples}`, `atrim=end_sample=${lengthSamples}`] : []),
  ]
  const filter = steps.length ? steps.join(',') : 'anull'
  // AAC stops at 96 kHz: ultrasonic recordings keep every sample as FLAC, which needs Matroska.
  const audioCodec = m.sampleRate > MAX_AAC_RATE ? ['-c:a', 'flac'] : ['-c:a', 'aac', '-b:a', '192k']
  const args = [
    '-hide_banner',
    '-n', // -n: never overwrite an existing output
    ...(m.itsscale ? ['-itsscale', m.itsscale.toFixed(9)] : []),
    '-i',
    m.videoFile,
    '-i',
    m.audioFile,
    '-map',
    '0:v:0',
    '-map',
    '1:a:0',
    '-c:v',
    'copy', // the recording itself is never re-encoded
    '-filter:a',
    filter,
    ...audioCodec,
    m.muxedFile,
  ]
  return { args, delaySamples, trimSamples, lengthSamples, filter }
}

const POSIX_SAFE = /^[A-Za-z0-9_/.,:@%+-][A-Za-z0-9_/.,:@%+=-]*$/ // '=' first is a zsh expansion

/** Quoting that bash, zsh and sh all read back as the same word, whatever the bytes. */
export function quotePosix(arg: string): string {
  if (POSIX_SAFE.test(arg)) return arg
  return `'${arg.replace(/'/g, `'\\''`)}'`
}

/** PowerShell: single quotes, each of its four single-quote characters doubled. */
export function quotePowerShellArg(arg: string): string {
  if (/^[A-Za-z0-9_/.,:\\-]+$/.test(arg) && !arg.startsWith('-')) return arg
  return `'${arg.replace(/['\u2018\u2019\u201a\u201b]/g, (q) => q + q)}'`
}

export function formatCommand(file: string, args: string[], platform: Platform): string {
  if (platform === 'win32')
    return ['&', quotePowerShellArg(file), ...args.map((a) => (/^-[\w:]+$/.test(a) ? a : quotePowerShellArg(a)))].join(
      ' ',
    )
  return [file, ...args].map(quotePosix).join(' ')
}

export function describeOffset(offsetS: number): string {
  const ms = Math.abs(offsetS * 1000).toFixed(1)
  if (Math.abs(offsetS) < 0.0005) return 'audio and video started together (offset 0.0 ms)'
  return offsetS > 0
    ? `audio started ${ms} ms after the video's first frame: ${ms} ms of silence go before it`
    : `audio started ${ms} ms before the video's first frame: its first ${ms} ms are cut`
}

export function installHint(platform: Platform): string {
  if (platform === 'darwin') return 'brew install ffmpeg'
  if (platform === 'win32') return 'winget install ffmpeg'
  return "sudo apt-get install ffmpeg (Debian/Ubuntu) or your distribution's ffmpeg package"
}

// ── The run ──────────────────────────────────────────────────────────────────────────────────

const say = (line: string) => {
  // On a terminal, first clear the live status line that may stand there.
  try {
    process.stderr.write(`${(process.stderr.isTTY ? '\r\x1b[K' : '') + line}\n`)
  } catch {
    /* the terminal is gone (SIGHUP): the files still get written */
  }
}

/** Says a line and gives back the exit code that goes with it. */
const sayThen = (line: string, exitCode: number) => {
  say(line)
  return exitCode
}

/** Writes to stdout (what scripts read) and gives back the exit code. */
const printThen = (text: string, exitCode: number) => {
  process.stdout.write(text)
  return exitCode
}

function packageVersion(): string {
  for (const rel of ['./package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8'))
      if (pkg.name === 'record-audio') return pkg.version
    } catch {
      /* try the next place */
    }
  }
  return 'unknown'
}

/** ffmpeg and ffprobe as runnable paths; ffprobe from the same folder when ffmpeg was given by path. */
async function findTools(ffmpegSetting: string): Promise<{ ffmpeg: string; ffprobe: string | null }> {
  const ffmpeg = /[\\/]/.test(ffmpegSetting)
    ? fs.existsSync(ffmpegSetting)
      ? path.resolve(ffmpegSetting)
      : null
    : await which(ffmpegSetting, { nothrow: true })
  if (!ffmpeg)
    throw new ToolError(
      `ffmpeg not found (tried ${JSON.stringify(ffmpegSetting)}): install it with ${installHint(process.platform)}, or pass --ffmpeg /path/to/ffmpeg`,
    )
  const exe = process.platform === 'win32' ? '.exe' : ''
  const sibling = path.join(path.dirname(ffmpeg), `ffprobe${exe}`)
  const ffprobe = fs.existsSync(sibling) ? sibling : await which('ffprobe', { nothrow: true })
  return { ffmpeg, ffprobe }
}

class ToolError extends Error {}

interface VideoFacts {
  file: string
  ulidEpochS: number
  finalized: boolean
  frames: number | null
  nominalFps: number | null
  mtimeEpochS: number
}

async function videoFacts(file: string, ffprobe: string | null): Promise<VideoFacts> {
  const finalized = isFinalizedMp4(file)
  let frames: number | null = null
  let nominalFps: number | null = null
  if (finalized && ffprobe) {
    const probe = await $({
      nothrow: true,
      quiet: true,
    })`${ffprobe} -v error -select_streams v:0 -show_entries stream=nb_frames,r_frame_rate -of json ${file}`
    const stream = probe.exitCode === 0 ? JSON.parse(probe.stdout).streams?.[0] : undefined
    if (Number(stream?.nb_frames) > 0) frames = Number(stream.nb_frames)
    nominalFps = parseRate(stream?.r_frame_rate)
  }
  return {
    file,
    ulidEpochS: ulidTimeMs(path.basename(file)) / 1000,
    finalized,
    frames,
    nominalFps,
    mtimeEpochS: fs.statSync(file).mtimeMs / 1000,
  }
}

/** The `timestampUTC` column of TracktorLive's timesync cassette; null when there is no file. */
async function readTimesync(file: string): Promise<number[] | null> {
  if (!fs.existsSync(file)) return null
  try {
    return await readTimesyncColumn(file)
  } catch (error) {
    throw new ToolError(`${file} cannot be read (${(error as Error).message})`)
  }
}

async function readTimesyncColumn(file: string): Promise<number[]> {
  const { asyncBufferFromFile, parquetReadObjects } = await import('hyparquet') // only runs with such a file
  const rows = await parquetReadObjects({ file: await asyncBufferFromFile(file), columns: ['timestampUTC'] })
  const times = rows.map((row) => Number(row.timestampUTC))
  if (times.length < 2 || times.some((t, i) => !Number.isFinite(t) || (i > 0 && t < times[i - 1])))
    throw new Error('no increasing timestampUTC column')
  return times
}

interface VideoSearch {
  videoFile: string | null
  feedDir: string | null
  searchRoot: string
}

/**
 * --video; else the newest recording in the feed folder; else, with no feed id, the recording in
 * any subfolder of the search root whose span (ULID → mtime) overlaps the audio most. null: none.
 */
function findVideo(v: VideoSearch, audio: { startEpochS: number; durationS: number | null }): string | null {
  if (v.videoFile) return v.videoFile
  if (v.feedDir) {
    let names: string[]
    try {
      names = fs.readdirSync(v.feedDir)
    } catch {
      return null
    }
    const newest = newestRecording(names)
    return newest ? path.join(v.feedDir, newest) : null
  }
  const videos: Omit<Candidate, 'overlapS'>[] = []
  for (const dir of fs.readdirSync(v.searchRoot, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue
    let names: string[]
    try {
      names = fs.readdirSync(path.join(v.searchRoot, dir.name))
    } catch {
      continue
    }
    for (const name of names.filter((n) => RECORDING_NAME.test(n))) {
      const file = path.join(v.searchRoot, dir.name, name)
      // Still being written (no moov yet): it runs until now, whatever its mtime says.
      const endEpochS = isFinalizedMp4(file) ? fs.statSync(file).mtimeMs / 1000 : Date.now() / 1000
      videos.push({ file, startEpochS: ulidTimeMs(name) / 1000, endEpochS })
    }
  }
  const ranked = rankByOverlap(videos, audio.startEpochS, audio.startEpochS + (audio.durationS ?? 0))
  const overlapping = ranked.filter((c) => c.overlapS > 0)
  if (!overlapping.length) {
    say(
      `⚠ No TracktorLive recording (<subfolder>/<ULID>.mp4) under ${v.searchRoot} overlaps the audio in time${ranked.length ? ` (${ranked.length} looked at)` : ''}.`,
    )
    return null
  }
  const chosen = overlapping[0]
  say(
    `  No feed id: picked ${path.relative(v.searchRoot, chosen.file)}, which covers ${chosen.overlapS.toFixed(1)} s of the audio` +
      (overlapping.length > 1 ? `, the most of ${overlapping.length} overlapping recordings:` : '.'),
  )
  if (overlapping.length > 1)
    for (const c of overlapping)
      say(
        `    ${c === chosen ? '→' : ' '} ${path.relative(v.searchRoot, c.file)}  ${c.overlapS.toFixed(1)} s  (give it with --video to choose)`,
      )
  return chosen.file
}

function checkVideoFile(videoFile: string | null): void {
  if (videoFile == null) return
  if (!fs.existsSync(videoFile))
    throw new UsageError(`--video ${videoFile} does not exist: give the path of the TracktorLive recording`)
  if (!RECORDING_NAME.test(path.basename(videoFile)))
    throw new UsageError(
      `--video ${videoFile} is not named <ULID>.mp4, so its start time is unknown: give TracktorLive's original file`,
    )
}

function checkTimesyncFile(timesyncFile: string | null): void {
  if (timesyncFile != null && !fs.existsSync(timesyncFile))
    throw new UsageError(
      `--timesync ${timesyncFile} does not exist: give the path of <feed_id>-timesyncUTC.parquet, or leave it out`,
    )
}

function checkMuxedFile(muxedFile: string | null): void {
  if (muxedFile != null && fs.existsSync(muxedFile))
    throw new UsageError(`${muxedFile} exists and is never overwritten: choose another --muxed-out`)
}

function checkPaths(s: Settings): { audioFile: string; syncFile: string } {
  const explicit = s.audioFile != null
  const defaultName = s.feedId != null ? `${s.feedId}-audio.wav` : `audio-${fileTimestamp(new Date())}.wav`
  const audioFile =
    s.audioFile != null ? s.audioFile : freeName(defaultName, (f) => fs.existsSync(f) || fs.existsSync(syncFileFor(f)))
  if (!explicit && audioFile !== defaultName) {
    say(`  ${defaultName} exists (an earlier recording, kept): recording to ${audioFile} instead.`)
    const earlier = readWavInfo(defaultName)
    if (earlier && !earlier.finalized)
      say(`⚠ Its header was never finalized: record-audio repair ${quotePosix(defaultName)}`)
  }
  if (explicit && fs.existsSync(audioFile))
    throw new UsageError(`${audioFile} exists and is never overwritten: choose another --out, or move it away`)
  for (const file of [audioFile, s.syncFile].filter((f): f is string => f != null))
    if (!fs.existsSync(path.dirname(path.resolve(file))))
      throw new UsageError(
        `folder ${path.dirname(file)} does not exist: create it, or write ${path.basename(file)} elsewhere`,
      )
  const syncFile = s.syncFile ?? syncFileFor(audioFile)
  if (fs.existsSync(syncFile))
    throw new UsageError(`${syncFile} exists and is never overwritten: choose another --sync-out, or move it away`)
  checkVideoFile(s.videoFile)
  checkMuxedFile(s.muxedFile)
  checkTimesyncFile(s.timesyncFile)
  return { audioFile, syncFile }
}

/**
 * On Linux, setpriv's parent-death signal makes the kernel stop ffmpeg if this process dies
 * without stopping it, even by SIGKILL: it must not record on until the disk is full. The signal
 * arrives once per ffmpeg thread, so ffmpeg aborts without rewriting the WAV's sizes; the
 * samples, flushed packet by packet, are all on disk.
 */
async function deathSignalLauncher(): Promise<string[]> {
  if (process.platform !== 'linux') return []
  const setpriv = await which('setpriv', { nothrow: true })
  return setpriv ? [setpriv, '--pdeathsig', 'INT', '--'] : []
}

async function record(s: Settings): Promise<number> {
  const { ffmpeg, ffprobe } = await findTools(s.ffmpeg)
  const { audioFile, syncFile } = checkPaths(s)
  const launcher = await deathSignalLauncher()

  // ffmpeg runs in its own process group, so a terminal's ctrl-c reaches only this process, which
  // then stops ffmpeg exactly once, with `q` on its stdin (a second signal would abort its writes).
  const spawnEpochS = Date.now() / 1000
  const capture = $({
    nothrow: true,
    quiet: true,
    detached: process.platform !== 'win32',
    stdio: ['pipe', 'ignore', 'pipe'],
  })`exec ${launcher} ${ffmpeg} ${captureArgs(s, audioFile)}`
  let stderr = ''
  capture.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-65536)
  })
  capture.stdin.on('error', () => {
    /* ffmpeg already gone: its exit is handled below */
  })
  const channelsText = s.channels === 1 ? 'mono' : s.channels === 2 ? 'stereo' : `${s.channels} channels`
  say(
    `● Recording ${s.format} device ${JSON.stringify(s.device)} (${s.sampleRate} Hz, ${channelsText}) to ${audioFile}. Press ctrl-c to stop.`,
  )

  let stopRequestedEpochS: number | null = null
  let signals = 0
  let escalation: NodeJS.Timeout | undefined
  const signalFfmpeg = (signal: NodeJS.Signals) => {
    const child = capture.child
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null)
      try {
        process.kill(child.pid, signal)
      } catch {
        /* exited meanwhile */
      }
  }
  // Samples reach the WAV one device latency after they were captured: wait until every sample up
  // to the stop request is on disk (bounded), then send q, the stop that finalizes the WAV.
  const drainThenStop = async (untilEpochS: number) => {
    const start = parseInputStart(stderr, s.format)
    const dataOffset = readWavInfo(audioFile)?.dataOffset
    if (start && dataOffset !== undefined) {
      const targetBytes = dataOffset + (untilEpochS - start.epochS) * s.sampleRate * s.channels * 2
      const deadline = Date.now() + MAX_DRAIN_MS
      while (signals === 1 && Date.now() < deadline && fileBytes(audioFile) < targetBytes) await sleep(10)
    }
    if (signals > 1) return
    capture.stdin.end('q')
    escalation = setTimeout(() => signalFfmpeg('SIGINT'), 3000) // q not read: one SIGINT still finalizes
  }
  const onSignal = () => {
    signals++
    if (signals === 1) {
      stopRequestedEpochS = Date.now() / 1000
      say('■ Stopping: ffmpeg is writing the last samples and finishing the WAV…')
      void drainThenStop(stopRequestedEpochS)
    } else if (signals === 2) {
      say(
        '■ Stopping now (ctrl-c again kills ffmpeg; the samples on disk are kept, but the WAV header may be left unfinished).',
      )
      signalFfmpeg('SIGINT')
    } else {
      signalFfmpeg('SIGKILL')
    }
  }
  const stopSignals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
  for (const signal of stopSignals) process.on(signal, onSignal)
  const killOnExit = () => signalFfmpeg('SIGINT') // a crash of this script must not leave ffmpeg recording
  process.on('exit', killOnExit)

  const status = startLiveStatus(audioFile, s.channels, s.sampleRate, () => stopRequestedEpochS !== null)
  const result = await capture
  status.stop()
  const exitedEpochS = Date.now() / 1000
  clearTimeout(escalation)
  for (const signal of stopSignals) process.off(signal, onSignal)
  process.off('exit', killOnExit)

  if (!fs.existsSync(audioFile)) {
    say(`✖ ffmpeg could not record from ${s.format} device ${JSON.stringify(s.device)}: ${ffmpegErrorLine(stderr)}`)
    say(`  List the devices with: ${listDevicesHint(s.format, ffmpeg)}`)
    return 1
  }
  let failed = stopRequestedEpochS === null
  if (failed) {
    const why = result.signal
      ? `ffmpeg was killed (${result.signal})`
      : `ffmpeg stopped recording on its own (exit ${result.exitCode}): ${ffmpegErrorLine(stderr)}`
    say(`✖ ${why}. The audio recorded so far is kept.`)
  }

  const audioStart = parseInputStart(stderr, s.format) ?? { epochS: spawnEpochS, source: 'spawn-time' as const }
  const wav = readWavInfo(audioFile)
  const audio: AudioFacts = {
    file: path.resolve(audioFile),
    startEpochS: audioStart.epochS,
    startSource: audioStart.source,
    sampleRate: s.sampleRate,
    channels: s.channels,
    durationS: wav ? wav.dataBytes / (wav.channels * (wav.bitsPerSample / 8) * wav.sampleRate) : null,
  }
  say(
    `✔ Audio: ${audioFile}` +
      (audio.durationS == null ? '' : ` (${audio.durationS.toFixed(2)} s)`) +
      `, first sample at ${new Date(audio.startEpochS * 1000).toISOString()} (${audio.startSource})`,
  )
  if (wav && !wav.finalized)
    say(
      `⚠ The WAV header was not finalized, so some readers misreport its length: record-audio repair ${quotePosix(audioFile)}`,
    )
  if (audio.startSource === 'spawn-time')
    say('⚠ ffmpeg printed no start time: the audio start is the time ffmpeg was started, typically 80–120 ms early.')
  // The WAV holds every sample from the first one's time to the stop, and no more than ffmpeg could
  // read before it exited: a length outside that means the device's timestamps or samples jumped.
  const audioCheck =
    audio.durationS == null || stopRequestedEpochS === null
      ? null
      : checkAudioSpan(audio.durationS, stopRequestedEpochS - audio.startEpochS, exitedEpochS - audio.startEpochS)
  if (audioCheck && !audioCheck.ok)
    say(
      `⚠ The WAV holds ${audio.durationS?.toFixed(3)} s but ${audioCheck.wallSpanS.toFixed(3)} s passed from its first sample to the stop: the device's timestamps or samples jumped, so the audio start is doubtful.`,
    )

  const feedDir = s.feedId == null ? null : path.resolve(s.feedId)
  const videoFile = findVideo({ videoFile: s.videoFile, feedDir, searchRoot: process.cwd() }, audio)
  if (s.mux) await waitForVideo(videoFile, s.waitS)
  const sync = await syncToVideo(audio, videoFile, { ...s, feedDir, ffmpeg, ffprobe })
  Object.assign(sync, {
    audioWallSpanS: audioCheck?.wallSpanS ?? null,
    audioStartDoubtful: audioCheck ? !audioCheck.ok : null,
  })
  try {
    fs.writeFileSync(syncFile, `${JSON.stringify(sync, null, 2)}\n`, { flag: 'wx' })
    say(`  Timing: ${syncFile}`)
  } catch (error) {
    // A full disk must not cost the timing: it goes to the terminal instead, and the part-written
    // file (created just now by 'wx', so ours) does not pretend to hold it.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') fs.rmSync(syncFile, { force: true })
    say(
      `✖ Could not write ${syncFile} (${(error as NodeJS.ErrnoException).code}); its content:\n${JSON.stringify(sync)}`,
    )
    failed = true
  }
  if (!sync.muxCommand) say(`  Once the video exists: record-audio mux ${quotePosix(syncFile)}`)
  const delivered = await deliver(sync, s, ffprobe)
  return failed ? 1 : delivered
}

async function plot(sync: Record<string, any>, plotFile: string): Promise<void> {
  if (sync.videoStartEpochS == null) return say('⚠ No plot: there is no video to draw the audio against.')
  if (fs.existsSync(plotFile)) return say(`⚠ No plot: ${plotFile} exists and is never overwritten.`)
  const { args } = plotArgs({
    audioFile: sync.audioFile,
    plotFile,
    audioStartEpochS: sync.audioStartEpochS,
    audioDurationS: sync.audioDurationS ?? 0,
    videoStartEpochS: sync.videoStartEpochS,
    videoDurationS: sync.videoDurationS ?? sync.videoRealSpanS ?? sync.audioDurationS ?? 0,
  })
  const drawn = await $({ nothrow: true, quiet: true })`${sync.muxArgs[0]} ${args}`
  say(
    drawn.exitCode === 0
      ? `✔ Plot: ${plotFile} (waveform above the video's span; red: first frame, green: first sample)`
      : `⚠ No plot: ${ffmpegErrorLine(drawn.stderr)}`,
  )
}

/** The end of every run: the command (or, with --json, the record) on stdout, and --mux's mux. */
async function deliver(sync: Record<string, any>, o: TimingOptions, ffprobe: string | null): Promise<number> {
  if (o.plotFile && sync.muxArgs) await plot(sync, o.plotFile)
  if (o.json) process.stdout.write(`${JSON.stringify(sync, null, 2)}\n`)
  if (!sync.muxCommand) return 0
  if (!o.json) {
    say(o.mux ? 'The mux command:' : 'Mux with:')
    process.stdout.write(`${sync.muxCommand}\n`)
  }
  if (!o.mux) return 0
  if (!sync.videoFinalized)
    return sayThen('✖ Not muxed: the video was not finished in time. Run the command above once it is.', 1)
  return runMux(sync, ffprobe)
}

const SPINNER = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏'

/** --mux: wait until the mp4 has its moov box and its size holds still; ctrl-c stops the waiting. */
async function waitForVideo(videoFile: string | null, waitS: number): Promise<void> {
  if (!videoFile || !fs.existsSync(videoFile)) return
  const finished = () => isFinalizedMp4(videoFile) && fileBytes(videoFile) === lastBytes
  let lastBytes = fileBytes(videoFile)
  if (isFinalizedMp4(videoFile)) {
    await sleep(300)
    if (finished()) return
  }
  let interrupted = false
  const stopWaiting = () => {
    interrupted = true
  }
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, stopWaiting)
  const tty = process.stderr.isTTY
  const deadline = Date.now() + waitS * 1000
  if (!tty) say(`  Waiting up to ${waitS} s for TracktorLive to finish ${videoFile} (ctrl-c stops waiting)…`)
  try {
    for (let tick = 0; !interrupted && Date.now() < deadline; tick++) {
      if (tty)
        process.stderr.write(
          `\r${SPINNER[tick % SPINNER.length]} Waiting for TracktorLive to finish ${path.basename(videoFile)} (${Math.round((deadline - Date.now()) / 1000)} s left, ctrl-c stops waiting)\x1b[K`,
        )
      await sleep(250)
      if (finished()) break
      lastBytes = fileBytes(videoFile)
    }
  } finally {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, stopWaiting)
    if (tty) process.stderr.write('\r\x1b[K')
  }
}

/** ffprobe's view of a file's streams. */
async function probeStreams(ffprobe: string, file: string): Promise<Array<Record<string, string>>> {
  // Packets are counted (no decoding), since Matroska states no frame count.
  const probe = await $({
    nothrow: true,
    quiet: true,
  })`${ffprobe} -v error -count_packets -show_entries stream=codec_type,codec_name,nb_read_packets,duration -of json ${file}`
  return probe.exitCode === 0 ? (JSON.parse(probe.stdout).streams ?? []) : []
}

/**
 * --mux: the printed command, writing to a temporary name beside the target, with a progress bar;
 * then ffprobe checks it (video copied frame for frame, audio present, same length within an audio
 * frame) before it takes the final name. A failed mux leaves nothing behind; originals are only read.
 */
async function runMux(sync: Record<string, any>, ffprobe: string | null): Promise<number> {
  const [ffmpeg, ...args] = sync.muxArgs as string[]
  const finalFile: string = sync.muxedFile
  const ext = path.extname(finalFile)
  const partial = `${finalFile.slice(0, -ext.length)}.partial-${process.pid}${ext}`
  const partialArgs = [...args.slice(0, -1), '-nostats', '-progress', 'pipe:1', partial]
  const totalUs = (sync.videoDurationS ?? 0) * 1e6
  const tty = process.stderr.isTTY
  const mux = $({ nothrow: true, quiet: true })`${ffmpeg} ${partialArgs}`
  mux.stdout.on('data', (chunk: Buffer) => {
    const outUs = Number(/out_time_us=(\d+)/.exec(chunk.toString())?.[1])
    if (tty && totalUs > 0 && Number.isFinite(outUs)) {
      const done = Math.min(1, outUs / totalUs)
      process.stderr.write(
        `\r  Muxing [${'#'.repeat(Math.round(done * 30)).padEnd(30)}] ${(done * 100).toFixed(0).padStart(3)} %\x1b[K`,
      )
    }
  })
  const interruptMux = () => {
    void mux.kill('SIGINT')
  }
  process.once('SIGINT', interruptMux)
  const result = await mux
  process.off('SIGINT', interruptMux)
  if (tty) process.stderr.write('\r\x1b[K')
  const fail = (why: string) => {
    fs.rmSync(partial, { force: true })
    say(`✖ Mux failed: ${why}. Nothing was written; the recording and the video are untouched.`)
    return 1
  }
  if (result.exitCode !== 0) return fail(ffmpegErrorLine(result.stderr))
  if (ffprobe) {
    const [original, muxed] = [await probeStreams(ffprobe, sync.videoFile), await probeStreams(ffprobe, partial)]
    const video = muxed.find((x) => x.codec_type === 'video')
    const audio = muxed.find((x) => x.codec_type === 'audio')
    const source = original.find((x) => x.codec_type === 'video')
    if (!video || !audio) return fail('the result lacks a video or an audio stream')
    if (source && (video.codec_name !== source.codec_name || video.nb_read_packets !== source.nb_read_packets))
      return fail(`the video was not copied whole (${video.nb_read_packets} frames of ${source.nb_read_packets})`)
    const audioFrameS = (audio.codec_name === 'flac' ? 4608 : 1024) / sync.audioSampleRate
    if (
      Number(video.duration) > 0 &&
      Number(audio.duration) > 0 &&
      Math.abs(Number(video.duration) - Number(audio.duration)) > audioFrameS + 1e-3
    )
      return fail(`audio ${audio.duration} s against video ${video.duration} s`)
  }
  try {
    fs.linkSync(partial, finalFile) // fails rather than replace a file that appeared meanwhile
    fs.rmSync(partial)
  } catch (error) {
    return fail(`${finalFile} could not be created (${(error as NodeJS.ErrnoException).code})`)
  }
  say(
    `✔ Muxed: ${finalFile} (video copied, ${sync.videoFrames ?? '?'} frames; audio ${sync.audioSampleRate > MAX_AAC_RATE ? 'FLAC' : 'AAC'}, in sync)`,
  )
  return 0
}

/**
 * While recording: reads what ffmpeg appended to the WAV (never touching ffmpeg), and shows the
 * elapsed time, size and level, redrawn on a TTY and as a plain line a minute when piped. Warns
 * once per quiet spell when the input stays below −80 dBFS for 5 s: a muted or wrong microphone.
 */
function startLiveStatus(audioFile: string, channels: number, sampleRate: number, stopping: () => boolean) {
  const tty = Boolean(process.stderr.isTTY)
  const color = tty && !('NO_COLOR' in process.env)
  const startedMs = Date.now()
  const frameBytes = channels * 2
  let readFrom: number | null = null
  let silentSinceMs: number | null = null
  let warned = false
  let lastPlainMs = startedMs
  let fd: number | null = null
  // A wake-up is the cost here (about 15 ms of CPU each on a small VM, whatever it does), so a
  // terminal gets one a second and a pipe, which only needs the silence watch, one per 2.5 s.
  const tickMs = tty ? 1000 : 2500
  const chunk = Buffer.allocUnsafe(Math.ceil((tickMs / 1000) * sampleRate) * frameBytes) // reused: no garbage per tick
  const tick = () => {
    if (stopping()) return
    // One descriptor for the whole recording: a tick is an fstat and a read, at most a second's worth.
    try {
      fd ??= fs.openSync(audioFile, 'r')
    } catch {
      return
    }
    const bytes = fs.fstatSync(fd).size
    readFrom ??= readWavInfo(audioFile)?.dataOffset ?? null
    if (readFrom === null || bytes <= readFrom) return
    const from = Math.max(readFrom, bytes - chunk.length)
    const start = from - ((from - readFrom) % frameBytes)
    const length = Math.floor(Math.min(chunk.length, bytes - start) / frameBytes) * frameBytes
    fs.readSync(fd, chunk, 0, length, start)
    readFrom = start + length
    // Every 47th sample (a prime, so no channel count or steady tone aliases with it): a thousand
    // a second is plenty for a level, and so short a loop never makes V8 compile it over and over.
    const dbfs = levelDbfs(new Int16Array(chunk.buffer, chunk.byteOffset, length / 2), 47)
    const now = Date.now()
    if (dbfs < SILENCE_DBFS)
      silentSinceMs ??= now - (length / frameBytes / sampleRate) * 1000 // since the window began
    else {
      silentSinceMs = null
      warned = false
    }
    if (tty) process.stderr.write(`\r${statusLine((now - startedMs) / 1000, bytes, dbfs, color)}\x1b[K`)
    else if (now - lastPlainMs >= 60000) {
      say(statusLine((now - startedMs) / 1000, bytes, dbfs, false))
      lastPlainMs = now
    }
    if (silentSinceMs !== null && now - silentSinceMs >= SILENCE_WARN_S * 1000 && !warned) {
      warned = true
      const warning = `⚠ The input has been silent (below ${SILENCE_DBFS} dBFS) for ${SILENCE_WARN_S} s: is the microphone muted, or the wrong one? (record-audio --list-devices)`
      say(color ? `\x1b[33m${warning}\x1b[0m` : warning)
    }
  }
  const timer = setInterval(tick, tickMs)
  return {
    stop() {
      clearInterval(timer)
      if (fd !== null) fs.closeSync(fd)
      if (tty) process.stderr.write('\r\x1b[K')
    },
  }
}

const MAX_DRAIN_MS = 1500 // longer than any sane device latency; a stuck device must not hold the stop

function fileBytes(file: string): number {
  try {
    return fs.statSync(file).size
  } catch {
    return 0
  }
}

function readWavInfo(file: string): WavInfo | null {
  try {
    const fd = fs.openSync(file, 'r')
    try {
      const header = Buffer.alloc(4096)
      const read = fs.readSync(fd, header, 0, header.length, 0)
      return parseWavHeader(header.subarray(0, read), fs.fstatSync(fd).size)
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    return null
  }
}

/** What the sync file says of the audio; all that the mux needs, so `mux` can redo it later. */
interface AudioFacts {
  file: string
  startEpochS: number
  startSource: AudioStart['source']
  sampleRate: number
  channels: number
  durationS: number | null
}

interface VideoChoice extends TimingOptions {
  feedDir: string | null
  videoFile: string | null
  muxedFile: string | null
  muxedSuffix: string
  ffmpeg: string
  ffprobe: string | null
}

const SOURCE_WORDS: Record<VideoTiming['source'], string> = {
  'video-start-flag': 'from --video-start',
  timesync: "from the timesync file's first row",
  ulid: 'from the ULID in its name, minted just before the first frame',
}

/** Finds the video, measures the offset, builds the command, says what it found; returns the sync record. */
async function syncToVideo(
  audio: AudioFacts,
  videoFile: string | null,
  v: VideoChoice,
): Promise<Record<string, unknown>> {
  const record: Record<string, unknown> = {
    tool: `record-audio ${packageVersion()}`,
    feedDir: v.feedDir,
    audioFile: audio.file,
    audioStartEpochS: audio.startEpochS,
    audioStartSource: audio.startSource,
    audioSampleRate: audio.sampleRate,
    audioChannels: audio.channels,
    audioDurationS: audio.durationS,
    videoFile: null,
    videoStartEpochS: null,
    videoStartSource: null,
    videoStartUncertaintyS: null,
    videoFinalized: null,
    videoFrames: null,
    videoNominalFps: null,
    videoDurationS: null,
    videoRealSpanS: null,
    videoSpanSource: null,
    timesyncFile: null,
    clockOffsetS: v.clockOffsetS,
    driftPpm: null,
    driftAtEndMs: null,
    itsscale: null,
    anchorWarnings: [],
    offsetS: null,
    delaySamples: null,
    trimSamples: null,
    muxedFile: null,
    muxArgs: null,
    muxCommand: null,
  }
  if (!videoFile) {
    if (v.feedDir) say(`⚠ No TracktorLive recording (<ULID>.mp4) in ${v.feedDir}${path.sep}: the WAV is kept.`)
    return record
  }
  const video = await videoFacts(videoFile, v.ffprobe)
  const timesyncFile = v.timesyncFile ?? `${v.feedDir ?? path.dirname(path.resolve(videoFile))}-timesyncUTC.parquet`
  const timing = videoTiming({
    ulidEpochS: video.ulidEpochS,
    userStartEpochS: v.videoStartEpochS,
    timesync: await readTimesync(timesyncFile).catch((error) => {
      say(`⚠ ${(error as Error).message}: the timesync file is not used.`) // never at the cost of the rest
      return null
    }),
    clockOffsetS: v.clockOffsetS,
    frames: video.frames,
    nominalFps: video.nominalFps,
    mtimeEpochS: video.finalized ? video.mtimeEpochS : null,
    driftFix: v.driftFix,
  })
  const offsetS = audio.startEpochS - timing.startEpochS
  const videoDurationS = timing.nominalDurationS == null ? null : timing.nominalDurationS * (timing.itsscale ?? 1)
  const wantedMuxed = muxedNameForRate(v.muxedFile ?? muxedFileFor(videoFile, v.muxedSuffix), audio.sampleRate)
  if (v.muxedFile && wantedMuxed !== v.muxedFile)
    say(`  ${audio.sampleRate} Hz is past AAC's 96 kHz: the audio goes into ${wantedMuxed} as FLAC, every sample kept.`)
  else if (wantedMuxed.endsWith('.mkv'))
    say(
      `  ${audio.sampleRate} Hz is past AAC's 96 kHz: the muxed file is Matroska (.mkv) with FLAC audio, every sample kept.`,
    )
  const muxedFile = path.resolve(v.muxedFile ? wantedMuxed : freeName(wantedMuxed, fs.existsSync))
  // Absolute paths: the command must work when pasted into a terminal in another folder.
  const plan = muxPlan({
    audioFile: audio.file,
    videoFile: path.resolve(videoFile),
    muxedFile,
    sampleRate: audio.sampleRate,
    offsetS,
    videoDurationS,
    itsscale: timing.itsscale,
  })
  const muxCommand = formatCommand(v.ffmpeg, plan.args, process.platform)
  Object.assign(record, {
    videoFile: path.resolve(videoFile),
    videoStartEpochS: timing.startEpochS,
    videoStartSource: timing.source,
    videoStartUncertaintyS: timing.uncertaintyS,
    videoFinalized: video.finalized,
    videoFrames: video.frames,
    videoNominalFps: video.nominalFps,
    videoDurationS,
    videoRealSpanS: timing.realSpanS,
    videoSpanSource: timing.spanSource,
    timesyncFile: timing.source === 'timesync' || timing.spanSource === 'timesync' ? path.resolve(timesyncFile) : null,
    driftPpm: timing.driftPpm,
    driftAtEndMs: timing.driftAtEndMs,
    itsscale: timing.itsscale,
    anchorWarnings: timing.warnings,
    offsetS,
    delaySamples: plan.delaySamples,
    trimSamples: plan.trimSamples,
    muxedFile,
    muxArgs: [v.ffmpeg, ...plan.args],
    muxCommand,
  })

  say(
    `✔ Video: ${videoFile}` +
      (video.finalized
        ? ` (finalized${videoDurationS == null ? '' : `, ${videoDurationS.toFixed(2)} s`})`
        : ' (not finalized yet)') +
      `, first frame at ${new Date(timing.startEpochS * 1000).toISOString()} ± ${(timing.uncertaintyS * 1000).toFixed(0)} ms (${SOURCE_WORDS[timing.source]})`,
  )
  say(`  Offset: ${describeOffset(offsetS)}.`)
  for (const warning of timing.warnings) say(`⚠ Anchors: ${warning}.`)
  if (timing.driftPpm != null && timing.driftAtEndMs != null) {
    const from =
      timing.spanSource === 'timesync'
        ? 'the timesync rows'
        : "start to mtime, so the video's end is anchored to its mtime"
    const drift = `  Drift: the video's real span (${from}) is ${timing.driftPpm.toFixed(0)} ppm off its nominal ${video.nominalFps} fps, ${timing.driftAtEndMs.toFixed(1)} ms at the end`
    say(
      drift +
        (timing.itsscale
          ? `: corrected with -itsscale ${timing.itsscale.toFixed(6)} (video copied, retimed to wall time; --no-drift-fix keeps the nominal timeline).`
          : Math.abs(timing.driftAtEndMs) > 1000 / (video.nominalFps ?? 25)
            ? ': not corrected (--no-drift-fix).'
            : ': within a frame, nothing to correct.'),
    )
  }
  const audioEndEpochS = audio.startEpochS + (audio.durationS ?? 0)
  if (
    videoDurationS != null &&
    (audioEndEpochS < timing.startEpochS || audio.startEpochS > timing.startEpochS + videoDurationS)
  )
    say('⚠ This video and the audio do not overlap in time: check that it is the right recording (--video).')
  if (!video.finalized)
    say(
      "⚠ The video is not finalized yet (TracktorLive is still writing it): run the command after the recorder has stopped. The audio is not cut to the video's length.",
    )
  return record
}

/** `record-audio mux SYNC_FILE`: the offset and the command again, from the sync file alone. */
async function muxLater(m: MuxLater): Promise<number> {
  let sync: Record<string, any>
  try {
    sync = JSON.parse(fs.readFileSync(m.syncFile, 'utf8'))
  } catch (error) {
    throw new UsageError(
      `cannot read ${m.syncFile} (${(error as NodeJS.ErrnoException).code ?? 'not JSON'}): give the -sync.json file a recording wrote`,
    )
  }
  if (
    typeof sync.audioFile !== 'string' ||
    typeof sync.audioStartEpochS !== 'number' ||
    typeof sync.audioSampleRate !== 'number'
  )
    throw new UsageError(`${m.syncFile} is not a record-audio sync file: give the -sync.json file a recording wrote`)
  if (!fs.existsSync(sync.audioFile))
    throw new UsageError(
      `the recording ${sync.audioFile} is not there any more: put it back, or edit audioFile in ${m.syncFile}`,
    )
  checkVideoFile(m.videoFile)
  checkMuxedFile(m.muxedFile)
  checkTimesyncFile(m.timesyncFile)
  const { ffmpeg, ffprobe } = await findTools(m.ffmpeg)
  if (readWavInfo(sync.audioFile)?.finalized === false)
    say(
      `⚠ ${sync.audioFile} has an unfinished header (ffmpeg reads it, other readers may not): record-audio repair ${quotePosix(sync.audioFile)}`,
    )
  const audio: AudioFacts = {
    file: sync.audioFile,
    startEpochS: sync.audioStartEpochS,
    startSource: sync.audioStartSource,
    sampleRate: sync.audioSampleRate,
    channels: sync.audioChannels,
    durationS: sync.audioDurationS ?? null,
  }
  const feedDir = typeof sync.feedDir === 'string' ? sync.feedDir : null
  const videoFile = findVideo({ videoFile: m.videoFile, feedDir, searchRoot: path.dirname(sync.audioFile) }, audio)
  if (m.mux) await waitForVideo(videoFile, m.waitS)
  const again = await syncToVideo(audio, videoFile, { ...m, feedDir, ffmpeg, ffprobe })
  if (!again.muxCommand && !m.json) return 1
  return deliver(again, m, ffprobe)
}

async function listDevices(format: Format, ffmpegSetting: string): Promise<number> {
  const { ffmpeg } = await findTools(ffmpegSetting)
  const out = await $({ nothrow: true, quiet: true })`${ffmpeg} ${listDevicesArgs(format)}`
  if (format === 'avfoundation') return printThen(out.stderr, 0)
  const devices = parseSources(out.stdout + out.stderr)
  if (!devices.length) {
    say(
      `✖ ffmpeg lists no ${format} devices (${ffmpegErrorLine(out.stderr + out.stdout)}). Try: ${listDevicesHint(format)}`,
    )
    return 1
  }
  for (const d of devices) process.stdout.write(`${d.isDefault ? '*' : ' '} ${d.name}  ${d.description}\n`)
  say(`(${format}; * is the default. Record one with --format ${format} --device <name>)`)
  return 0
}

/** `record-audio repair FILE.wav`: only the size fields of the header are written. */
function repairWav(file: string): number {
  let fd: number
  try {
    fd = fs.openSync(file, 'r+')
  } catch (error) {
    throw new UsageError(
      `cannot open ${file} (${(error as NodeJS.ErrnoException).code}): give the path of the WAV to repair`,
    )
  }
  try {
    const header = Buffer.alloc(4096)
    const read = fs.readSync(fd, header, 0, header.length, 0)
    const fileBytes = fs.fstatSync(fd).size
    let repair: WavRepair | null
    try {
      repair = wavRepair(header.subarray(0, read), fileBytes)
    } catch (error) {
      throw new UsageError(`${file}: ${(error as Error).message}; it was left as it is`)
    }
    if (!repair) return sayThen(`✔ ${file} is already finalized: nothing to repair.`, 0)
    for (const patch of repair.patches) fs.writeSync(fd, patch.bytes, 0, patch.bytes.length, patch.offset)
    fs.fsyncSync(fd)
    const info = parseWavHeader(header.subarray(0, read), fileBytes)
    const seconds = repair.dataBytes / (info.channels * (info.bitsPerSample / 8) * info.sampleRate)
    say(
      `✔ Repaired ${file}: ${repair.kind} header for ${seconds.toFixed(3)} s of audio (the samples were not touched).`,
    )
    return 0
  } finally {
    fs.closeSync(fd)
  }
}

export async function main(argv: string[]): Promise<number> {
  // A closed terminal (SIGHUP) turns writes into EIO errors: the stop must go on regardless.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {})
  let command: Command
  try {
    command = parseCommand(argv, process.platform)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    say(`record-audio: ${error.message}`)
    return 2
  }
  if (command.kind === 'help') return printThen(`${helpText(process.platform)}\n`, 0)
  if (command.kind === 'version') return printThen(`${packageVersion()}\n`, 0)
  try {
    if (command.kind === 'repair') return repairWav(command.file)
    if (command.kind === 'list-devices') return await listDevices(command.format, command.ffmpeg)
    return command.kind === 'mux' ? await muxLater(command.mux) : await record(command.settings)
  } catch (error) {
    if (error instanceof UsageError) return sayThen(`record-audio: ${error.message}`, 2)
    if (error instanceof ToolError) return sayThen(`record-audio: ${error.message}`, 1)
    throw error
  }
}

function invokedDirectly(): boolean {
  try {
    return fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (invokedDirectly()) process.exitCode = await main(process.argv.slice(2))
