import { Link } from '../router';

export function NotFoundPage() {
  return (
    <div className="card">
      <h1 tabIndex={-1} className="page-title">
        Page not found
      </h1>
      <p>
        <Link to="/">Go to the job list</Link>
      </p>
    </div>
  );
}
