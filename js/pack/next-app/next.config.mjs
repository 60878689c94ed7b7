// As create-next-app writes it: nothing for resock.
/** @type {import('next').NextConfig} */
const nextConfig = {};
export default nextConfig;
