// Type-aware lint: floating promises and misused promises are the bugs that matter most in an
// engine whose correctness depends on awaiting commits before releasing effects. The second half
// keeps the layers apart: one `no-restricted-imports` rule per folder says what it may not import
// (see each folder's index.ts header and docs/ARCHITECTURE.md, "Layers"), and orchestration code
// may not read the clock, draw random numbers or set timers. Import cycles are caught by
// test/tooling/check-cycles.ts, which `npm run lint` runs after ESLint.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

/** An import restriction by regular expression over the import's specifier. */
const ban = (regex, message) => ({ regex, message })

const NATS = ban(
  '^@nats-io/',
  'Only runtime/nats/ talks to NATS: import what you need from runtime/nats/index.ts.',
)
const NODE = ban(
  '^(node:|(assert|buffer|child_process|crypto|dns|events|fs|http|https|net|os|path|perf_hooks|process|stream|timers|url|util|worker_threads|zlib)(/|$))',
  'This folder runs anywhere: no Node.js built-in modules.',
)
const RUNTIME = ban('(^|/)runtime/', 'actors/ and entities/ know nothing of the runtime, which imports them.')
const PLACEMENT = ban('(^|/)placement/', 'Only the runtime wires placement in.')
const PROM = ban(
  '^prom-client($|/)',
  'Only runtime/metrics/ imports prom-client: the engine records into plain numbers (runtime/metrics/recorder.ts).',
)
const OTEL = ban(
  '^@opentelemetry/',
  'Only runtime/metrics/tracing.ts imports @opentelemetry/* (an optional peer dependency, loaded on demand): start spans through its Tracing interface.',
)

/** The runtime folders from the bottom layer up; a folder may import only folders before it. */
const RUNTIME_LAYERS = [
  'util',
  'metrics',
  'nats',
  'partition',
  'activities',
  'instances',
  'client',
  'dashboard',
  'node',
  'cli',
]
const OTHER_RUNTIME = ['dev']

/** Restrictions for one runtime folder: no higher layer, no deep import into another folder. */
function runtimeFolder(name, files = [`runtime/${name}/**/*.ts`], otel = false) {
  // (the CLI's `basalt dev` starts the embedded nats-server of runtime/dev/)
  const higher = RUNTIME_LAYERS.slice(RUNTIME_LAYERS.indexOf(name) + 1).concat(
    name === 'cli' ? [] : OTHER_RUNTIME,
  )
  const others = RUNTIME_LAYERS.concat(OTHER_RUNTIME).filter((f) => f !== name)
  const patterns = [
    ban(
      `^\\.\\./(\\.\\./)*(runtime/)?(${others.join('|')})/(?!index\\.ts$)`,
      `Import another runtime folder through its index.ts, not its internals.`,
    ),
    ban(
      `^\\.\\./(\\.\\./)*(actors|entities|placement)/(?!(index|orchestration/index|wire/index)\\.ts$)`,
      `Import actors/, entities/ and placement/ through their index.ts files.`,
    ),
  ]
  if (higher.length > 0) {
    patterns.push(
      ban(
        `^\\.\\./(${higher.join('|')})/`,
        `runtime/${name}/ is below ${higher.join(', ')}: they import it, not the other way round.`,
      ),
    )
  }
  if (name !== 'nats') patterns.push(NATS)
  if (name !== 'metrics') patterns.push(PROM)
  if (!otel) patterns.push(OTEL)
  if (!['dashboard', 'node', 'cli'].includes(name)) patterns.push(PLACEMENT)
  return {
    files,
    rules: { 'no-restricted-imports': ['error', { patterns }] },
  }
}

/** Globals, properties and syntax that make orchestration code non-deterministic. */
const DETERMINISM =
  'Orchestration code is replayed: take time, randomness and timers from the context (ctx.now(), ctx.newGuid(), ctx.createTimer()).'
const TIMERS = [
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'clearImmediate',
  'queueMicrotask',
  'performance',
]

export default tseslint.config(
  { ignores: ['node_modules/**', '.basalt/**', 'docs/**', 'dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'require-yield': 'off',
    },
  },
  {
    files: ['**/*.mjs', 'eslint.config.js'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // the dashboard's UI: plain ES modules that run in the browser
    files: ['runtime/dashboard/ui/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      sourceType: 'module',
      globals: Object.fromEntries(
        [
          'document',
          'location',
          'fetch',
          'EventSource',
          'FormData',
          'URLSearchParams',
          'addEventListener',
          'removeEventListener',
          'setInterval',
          'clearInterval',
          'setTimeout',
          'clearTimeout',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },

  // ---- Layer boundaries ------------------------------------------------------------------------
  {
    files: ['actors/**/*.ts', 'entities/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [NATS, NODE, RUNTIME, PLACEMENT, OTEL] }] },
  },
  {
    files: ['actors/orchestration/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [NATS, NODE, RUNTIME, PLACEMENT, OTEL] }],
      'no-restricted-globals': ['error', ...TIMERS.map((name) => ({ name, message: DETERMINISM }))],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: DETERMINISM },
        { object: 'Math', property: 'random', message: DETERMINISM },
        { object: 'crypto', property: 'randomUUID', message: DETERMINISM },
        { object: 'crypto', property: 'getRandomValues', message: DETERMINISM },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: DETERMINISM },
        { selector: "CallExpression[callee.name='Date']", message: DETERMINISM },
        {
          selector: `MemberExpression[object.name='globalThis'][property.name=/^(Date|Math|crypto|${TIMERS.join('|')})$/]`,
          message: DETERMINISM,
        },
      ],
    },
  },
  {
    files: ['placement/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            NATS,
            NODE,
            OTEL,
            ban('(^|/)entities/', 'placement/ decides where partitions run; it knows nothing of entities.'),
            ban(
              '(^|/)runtime/(?!(nats|util)/index\\.ts$)',
              'placement/ may import only actors/, runtime/nats/index.ts and runtime/util/index.ts (the logger).',
            ),
          ],
        },
      ],
    },
  },
  ...RUNTIME_LAYERS.map((name) => runtimeFolder(name)),
  // the one module that loads OpenTelemetry
  runtimeFolder('metrics', ['runtime/metrics/tracing.ts'], true),
)
