import { JobStreamProvider } from '@jobstream/client/react';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import { App } from './App';
import { auth } from './auth';
import { createClient } from './client';
import './styles.css';

const client = createClient();
void auth.load(client);
const root = document.getElementById('root');
if (!root) throw new Error('no #root element');

createRoot(root).render(
  <StrictMode>
    <JobStreamProvider client={client}>
      <App />
    </JobStreamProvider>
  </StrictMode>,
);
