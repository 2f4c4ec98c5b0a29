/**
 * The submit form is built from `GET /api/v1/kinds`: each kind's `params_schema` (Pydantic's JSON
 * schema) becomes a list of fields. When the server does not list its kinds, the demo kinds
 * below stand in, so the form still works.
 */

import type { JobKind, JsonSchema } from '@jobstream/client';

import { humanize } from './format';

export const DEMO_KINDS: JobKind[] = [
  {
    name: 'video',
    description: 'Generates a short MP4 in 8 steps.',
    params_schema: {
      type: 'object',
      properties: {
        prompt: { type: 'string', title: 'Prompt', minLength: 1, description: 'What the video shows.' },
        duration_seconds: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'null' }], title: 'Duration (seconds)' },
        fail_at_step: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'null' }], title: 'Fail at step' },
      },
      required: ['prompt'],
    },
  },
  {
    name: 'pdf',
    description: 'A 12-step PDF pipeline.',
    params_schema: {
      type: 'object',
      properties: {
        pages: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'null' }], title: 'Pages', default: 12 },
        fail_at_step: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'null' }], title: 'Fail at step' },
      },
    },
  },
  {
    name: 'task',
    description: 'A transcription-like task with named states and an ETA.',
    params_schema: {
      type: 'object',
      properties: {
        source_url: { anyOf: [{ type: 'string' }, { type: 'null' }], title: 'Source URL' },
        language: { anyOf: [{ type: 'string' }, { type: 'null' }], title: 'Language' },
      },
    },
  },
  {
    name: 'character',
    description: 'Creates a character.',
    params_schema: {
      type: 'object',
      properties: {
        name: { type: 'string', title: 'Name' },
        age: { type: 'integer', title: 'Age', minimum: 0 },
      },
      required: ['name', 'age'],
    },
  },
  {
    name: 'media',
    description: 'Creates an image, audio or video asset.',
    params_schema: {
      type: 'object',
      properties: {
        name: { anyOf: [{ type: 'string' }, { type: 'null' }], title: 'Name' },
        media_type: { anyOf: [{ enum: ['image', 'audio', 'video'], type: 'string' }, { type: 'null' }], title: 'Media type' },
      },
    },
  },
];

export type FieldKind = 'text' | 'textarea' | 'integer' | 'number' | 'boolean' | 'select' | 'json';

export interface FieldSpec {
  name: string;
  label: string;
  kind: FieldKind;
  required: boolean;
  description?: string;
  options?: string[];
  defaultValue?: unknown;
  min?: number;
  max?: number;
  minLength?: number;
  maxLength?: number;
  format?: string;
  /** For demos and tests (`fail_at_step`): shown under the form's "Advanced" disclosure. */
  advanced: boolean;
}

/** Fields a person trying a kind does not need: the schema marks them (`"advanced": true`, from
 * the params model's `json_schema_extra`), and `fail_at_step` always is one. */
function isAdvanced(name: string, schema: JsonSchema): boolean {
  return (schema as { advanced?: unknown }).advanced === true || name === 'fail_at_step';
}

function resolveRef(schema: JsonSchema, root: JsonSchema): JsonSchema {
  let current = schema;
  for (let depth = 0; depth < 8 && typeof current.$ref === 'string'; depth += 1) {
    const match = /^#\/(\$defs|definitions)\/(.+)$/.exec(current.$ref);
    const defs = match ? (match[1] === '$defs' ? root.$defs : root.definitions) : undefined;
    const target = match?.[2] ? defs?.[match[2]] : undefined;
    if (!target) break;
    const { $ref: _ignored, ...rest } = current;
    current = { ...target, ...rest };
  }
  return current;
}

/** The one non-null alternative of an `anyOf`/`oneOf` (Pydantic's `Optional[...]`), merged. */
function unwrap(schema: JsonSchema, root: JsonSchema): { schema: JsonSchema; nullable: boolean } {
  let current = resolveRef(schema, root);
  let nullable = false;
  const alternatives = current.anyOf ?? current.oneOf;
  if (alternatives) {
    const resolved = alternatives.map((alternative) => resolveRef(alternative, root));
    const nonNull = resolved.filter((alternative) => alternative.type !== 'null');
    nullable = nonNull.length < resolved.length;
    if (nonNull.length === 1 && nonNull[0]) {
      const { anyOf: _a, oneOf: _o, ...outer } = current;
      current = { ...nonNull[0], ...outer };
    }
  }
  if (current.allOf?.length === 1 && current.allOf[0]) {
    const { allOf: _all, ...outer } = current;
    current = { ...resolveRef(current.allOf[0], root), ...outer };
  }
  if (Array.isArray(current.type)) {
    const types = current.type.filter((type) => type !== 'null');
    nullable = nullable || types.length < current.type.length;
    current = { ...current, type: types[0] };
  }
  return { schema: current, nullable };
}

/** Pydantic's automatic title of a field (`reference_image_url` → `Reference Image Url`). */
function automaticTitle(name: string): string {
  return name
    .split('_')
    .filter(Boolean)
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(' ');
}

const ACRONYMS: Record<string, string> = { url: 'URL', id: 'ID', pdf: 'PDF', api: 'API', eta: 'ETA' };

/** A field's label: its schema title when someone wrote one, else its name in sentence case
 * (`Reference image URL` rather than Pydantic's `Reference Image Url`). */
export function fieldLabel(name: string, title: unknown): string {
  if (typeof title === 'string' && title.trim() && title !== automaticTitle(name)) return title;
  return humanize(name)
    .split(' ')
    .map((word) => ACRONYMS[word.toLowerCase()] ?? word)
    .join(' ');
}

function isUrlField(name: string, schema: JsonSchema): boolean {
  return schema.format === 'uri' || /(^|_)url$/i.test(name);
}

export function fieldsFor(kind: JobKind): FieldSpec[] {
  const root = kind.params_schema;
  if (!root?.properties) return [];
  const required = new Set(root.required ?? []);
  return Object.entries(root.properties).map(([name, raw]): FieldSpec => {
    const { schema } = unwrap(raw, root);
    let fieldKind: FieldKind;
    const options = (schema.enum ?? (schema.const !== undefined ? [schema.const] : undefined))?.map(String);
    if (options) fieldKind = 'select';
    else if (schema.type === 'integer') fieldKind = 'integer';
    else if (schema.type === 'number') fieldKind = 'number';
    else if (schema.type === 'boolean') fieldKind = 'boolean';
    else if (schema.type === 'object' || schema.type === 'array') fieldKind = 'json';
    else if (isUrlField(name, schema)) fieldKind = 'text';
    else if (name === 'prompt' || (schema.maxLength ?? 0) > 200) fieldKind = 'textarea';
    else fieldKind = 'text';
    const spec: FieldSpec = {
      name,
      label: fieldLabel(name, schema.title),
      kind: fieldKind,
      required: required.has(name),
      advanced: isAdvanced(name, schema) && !required.has(name),
    };
    if (schema.description) spec.description = schema.description;
    if (options) spec.options = options;
    if (schema.default !== undefined && schema.default !== null) spec.defaultValue = schema.default;
    const min = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : undefined);
    const max = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - 1 : undefined);
    if (min !== undefined) spec.min = min;
    if (max !== undefined) spec.max = max;
    if (schema.minLength !== undefined) spec.minLength = schema.minLength;
    if (schema.maxLength !== undefined) spec.maxLength = schema.maxLength;
    if (schema.format) spec.format = schema.format;
    else if (fieldKind === 'text' && isUrlField(name, schema)) spec.format = 'uri';
    return spec;
  });
}

/** The form's initial text for each field. */
export function initialValues(fields: FieldSpec[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const field of fields) {
    const value = field.defaultValue;
    if (field.kind === 'boolean') values[field.name] = value === true ? 'true' : 'false';
    else if (field.kind === 'json') values[field.name] = value === undefined ? '' : JSON.stringify(value, null, 2);
    else values[field.name] = value === undefined ? '' : String(value);
  }
  return values;
}

/** Form text to params: empty optional fields are left out, so the server's defaults apply. */
export function paramsFrom(
  fields: FieldSpec[],
  values: Record<string, string>,
): { params: Record<string, unknown>; errors: Record<string, string> } {
  const params: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const field of fields) {
    const text = (values[field.name] ?? '').trim();
    if (field.kind === 'boolean') {
      params[field.name] = values[field.name] === 'true';
      continue;
    }
    if (text === '') {
      if (field.required) errors[field.name] = `${field.label} is required`;
      continue;
    }
    switch (field.kind) {
      case 'integer':
      case 'number': {
        const number = Number(text);
        if (!Number.isFinite(number) || (field.kind === 'integer' && !Number.isInteger(number))) {
          errors[field.name] = `${field.label} must be ${field.kind === 'integer' ? 'a whole number' : 'a number'}`;
        } else {
          params[field.name] = number;
        }
        break;
      }
      case 'json':
        try {
          params[field.name] = JSON.parse(text) as unknown;
        } catch {
          errors[field.name] = `${field.label} must be valid JSON`;
        }
        break;
      default:
        params[field.name] = text;
    }
  }
  return { params, errors };
}
