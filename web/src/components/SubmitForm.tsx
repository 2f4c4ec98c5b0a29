import { JobStreamError, type Job, type JobKind } from '@jobstream/client';
import { useEffect, useId, useMemo, useRef, useState, type FormEvent } from 'react';

import { useClient } from '../client';
import { DEMO_KINDS, fieldsFor, initialValues, paramsFrom, type FieldSpec } from '../kinds';

type KindsState = { status: 'loading' } | { status: 'ready'; kinds: JobKind[]; fromServer: boolean };

/** The kinds the server runs (`GET /api/v1/kinds`; the demo kinds when it does not say). */
export function useKinds(): KindsState {
  const client = useClient();
  const [state, setState] = useState<KindsState>({ status: 'loading' });
  useEffect(() => {
    const abort = new AbortController();
    client
      .kinds({ signal: abort.signal })
      .then((kinds) => {
        const usable = Array.isArray(kinds) && kinds.length > 0 ? kinds : DEMO_KINDS;
        setState({ status: 'ready', kinds: usable, fromServer: usable !== DEMO_KINDS });
      })
      .catch(() => {
        if (!abort.signal.aborted) setState({ status: 'ready', kinds: DEMO_KINDS, fromServer: false });
      });
    return () => abort.abort();
  }, [client]);
  return state;
}

function fieldForIssue(loc: (string | number)[] | undefined, fields: FieldSpec[]): string | null {
  if (!loc) return null;
  for (let index = loc.length - 1; index >= 0; index -= 1) {
    const part = loc[index];
    if (typeof part === 'string' && fields.some((field) => field.name === part)) return part;
  }
  return null;
}

interface FieldInputProps {
  field: FieldSpec;
  id: string;
  value: string;
  error: string | undefined;
  onChange: (value: string) => void;
}

function FieldInput({ field, id, value, error, onChange }: FieldInputProps) {
  const hintId = field.description ? `${id}-hint` : undefined;
  const errorId = error ? `${id}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(' ') || undefined;
  const common = {
    id,
    name: field.name,
    'aria-describedby': describedBy,
    'aria-invalid': error ? true : undefined,
    'data-testid': `param-${field.name}`,
  } as const;
  let control;
  switch (field.kind) {
    case 'boolean':
      return (
        <div className="field field--checkbox">
          <input {...common} type="checkbox" checked={value === 'true'} onChange={(event) => onChange(event.target.checked ? 'true' : 'false')} />
          <label htmlFor={id}>{field.label}</label>
          {field.description ? <p className="field__hint" id={hintId}>{field.description}</p> : null}
          {error ? <p className="field__error" id={errorId}>{error}</p> : null}
        </div>
      );
    case 'select':
      control = (
        <select {...common} required={field.required} value={value} onChange={(event) => onChange(event.target.value)}>
          {field.required ? null : <option value="">(default)</option>}
          {field.options?.map((option) => (
            <option key={option} value={option}>
              {option}
            </option>
          ))}
        </select>
      );
      break;
    case 'textarea':
    case 'json':
      control = (
        <textarea
          {...common}
          rows={field.kind === 'json' ? 4 : 3}
          required={field.required}
          minLength={field.minLength}
          maxLength={field.maxLength}
          value={value}
          onChange={(event) => onChange(event.target.value)}
        />
      );
      break;
    case 'integer':
    case 'number':
      control = (
        <input
          {...common}
          type="number"
          inputMode={field.kind === 'integer' ? 'numeric' : 'decimal'}
          step={field.kind === 'integer' ? 1 : 'any'}
          min={field.min}
          max={field.max}
          required={field.required}
          placeholder={field.defaultValue !== undefined ? String(field.defaultValue) : undefined}
          value={value}
          onChange={(event) => onChange(event.target.value)}
        />
      );
      break;
    default:
      control = (
        <input
          {...common}
          type={field.format === 'uri' ? 'url' : 'text'}
          required={field.required}
          minLength={field.minLength}
          maxLength={field.maxLength}
          value={value}
          onChange={(event) => onChange(event.target.value)}
        />
      );
  }
  return (
    <div className="field">
      <label htmlFor={id}>
        {field.label}
        {field.required ? (
          <span className="field__required" aria-hidden="true">
            {' '}
            *
          </span>
        ) : (
          <span className="field__optional"> (optional)</span>
        )}
      </label>
      {control}
      {field.description ? <p className="field__hint" id={hintId}>{field.description}</p> : null}
      {error ? <p className="field__error" id={errorId}>{error}</p> : null}
    </div>
  );
}

interface SubmitFormProps {
  onSubmitted: (job: Job) => void;
}

/** One form for every job kind, its fields built from the kind's params schema. */
export function SubmitForm({ onSubmitted }: SubmitFormProps) {
  const client = useClient();
  const kinds = useKinds();
  const formId = useId();
  const [kindName, setKindName] = useState<string>('');
  const [values, setValues] = useState<Record<string, Record<string, string>>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [submitting, setSubmitting] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);

  const list = kinds.status === 'ready' ? kinds.kinds : [];
  const kind = list.find((candidate) => candidate.name === kindName) ?? list[0];
  const fields = useMemo(() => (kind ? fieldsFor(kind) : []), [kind]);
  const current = kind ? (values[kind.name] ?? initialValues(fields)) : {};
  const [advancedOpen, setAdvancedOpen] = useState(false);
  const basic = fields.filter((field) => !field.advanced);
  const advanced = fields.filter((field) => field.advanced);

  if (kinds.status === 'loading') {
    return (
      <p className="muted" role="status">
        Loading job kinds…
      </p>
    );
  }

  const setValue = (name: string, value: string): void => {
    if (!kind) return;
    setValues((all) => ({ ...all, [kind.name]: { ...current, [name]: value } }));
    if (errors[name]) setErrors(({ [name]: _removed, ...rest }) => rest);
  };

  const focusField = (name: string): void => {
    if (advanced.some((field) => field.name === name)) setAdvancedOpen(true);
    const element = formRef.current?.querySelector<HTMLElement>(`[name="${CSS.escape(name)}"]`);
    element?.focus();
  };

  const input = (field: FieldSpec) => (
    <FieldInput
      key={field.name}
      field={field}
      id={`${formId}-${kind?.name ?? ''}-${field.name}`}
      value={current[field.name] ?? ''}
      error={errors[field.name]}
      onChange={(value) => setValue(field.name, value)}
    />
  );

  const submit = async (event: FormEvent<HTMLFormElement>): Promise<void> => {
    event.preventDefault();
    if (!kind || submitting) return;
    const { params, errors: local } = paramsFrom(fields, current);
    setFormError(null);
    if (Object.keys(local).length > 0) {
      setErrors(local);
      const first = Object.keys(local)[0];
      if (first) focusField(first);
      return;
    }
    setErrors({});
    setSubmitting(true);
    try {
      const job = await client.submit(kind.name, params);
      onSubmitted(job);
    } catch (error) {
      if (error instanceof JobStreamError && error.code === 'validation') {
        const byField: Record<string, string> = {};
        const rest: string[] = [];
        for (const issue of error.issues) {
          const name = fieldForIssue(issue.loc, fields);
          if (name && !byField[name]) byField[name] = issue.msg;
          else rest.push(issue.msg);
        }
        setErrors(byField);
        setFormError(rest.length > 0 ? rest.join('; ') : 'Please check the highlighted fields.');
        const first = Object.keys(byField)[0];
        if (first) focusField(first);
      } else {
        setFormError(error instanceof Error ? error.message : String(error));
      }
    } finally {
      setSubmitting(false);
    }
  };

  return (
    <form
      ref={formRef}
      className="form"
      data-testid="submit-form"
      aria-describedby={formError ? `${formId}-form-error` : undefined}
      noValidate
      onSubmit={(event) => void submit(event)}
    >
      <div className="field">
        <label htmlFor={`${formId}-kind`}>Job kind</label>
        <select
          id={`${formId}-kind`}
          name="kind"
          data-testid="kind-select"
          value={kind?.name ?? ''}
          onChange={(event) => {
            setKindName(event.target.value);
            setErrors({});
            setFormError(null);
          }}
          aria-describedby={kind?.description ? `${formId}-kind-hint` : undefined}
        >
          {list.map((candidate) => (
            <option key={candidate.name} value={candidate.name}>
              {candidate.name}
            </option>
          ))}
        </select>
        {kind?.description ? (
          <p className="field__hint" id={`${formId}-kind-hint`}>
            {kind.description}
          </p>
        ) : null}
      </div>
      {kind ? (
        <fieldset className="fieldset" key={kind.name}>
          <legend className="visually-hidden">Parameters of the {kind.name} job</legend>
          {fields.length === 0 ? <p className="muted">This kind takes no parameters.</p> : null}
          {basic.map(input)}
          {advanced.length > 0 ? (
            <details
              className="advanced"
              data-testid="advanced-fields"
              open={advancedOpen || advanced.some((field) => errors[field.name] !== undefined)}
              onToggle={(event) => setAdvancedOpen(event.currentTarget.open)}
            >
              <summary data-testid="advanced-toggle">Advanced (for demos and tests)</summary>
              {advanced.map(input)}
            </details>
          ) : null}
        </fieldset>
      ) : null}
      {formError ? (
        <p className="form__error" role="alert" id={`${formId}-form-error`} data-testid="submit-error">
          {formError}
        </p>
      ) : null}
      <button type="submit" className="button button--primary" data-testid="submit-button" disabled={submitting || !kind}>
        {submitting ? 'Starting…' : 'Start job'}
      </button>
    </form>
  );
}
